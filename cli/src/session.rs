//! `runfleet session show`: a session's summary.

use std::process::ExitCode;

use runfleet_producer::{ProducerError, follow};
use runfleet_schemas::{SessionId, Tenant};

use crate::cli::{Cli, SessionShowArgs};
use crate::{connect, print};

pub(crate) async fn show(cli: &Cli, args: &SessionShowArgs) -> anyhow::Result<ExitCode> {
    let tenant = Tenant::new(args.tenant.as_str()).map_err(ProducerError::from)?;
    let session = SessionId::new(args.session.as_str()).map_err(ProducerError::from)?;
    let producer = connect(cli).await?;
    let summary = follow::session_summary(producer.client(), &tenant, &session).await?;
    print::report(cli, &summary, || {
        let field = |name: &str| match &summary[name] {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        format!(
            "session {}  {}\n  tenant {}  project {}  profile {}\n  runs {}  last run {} ({})\n  last activity {}  last event seq {}",
            field("session_id"),
            field("state"),
            field("tenant"),
            field("project"),
            field("backend_profile"),
            field("runs"),
            field("last_run_id"),
            field("last_run_status"),
            field("last_activity"),
            field("last_event_seq"),
        )
    });
    Ok(ExitCode::SUCCESS)
}
