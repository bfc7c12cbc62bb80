//! `runfleet run create`: open a run; prints its id.

use std::process::ExitCode;

use runfleet_producer::{ProducerError, new_run};
use runfleet_schemas::{ResourceBundle, RunId};

use crate::cli::{Cli, RunCreateArgs};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, args: &RunCreateArgs) -> anyhow::Result<ExitCode> {
    let mut run =
        new_run(&args.tenant, &args.project, &args.profile).map_err(ProducerError::from)?;
    run.budgets = args.budgets.iter().cloned().collect();
    run.priority = args.priority;
    run.concurrency_key = args.concurrency_key.clone();
    run.resource_bundle = match (&args.bundle_dir, &args.bundle_git, &args.bundle_commit) {
        (Some(path), _, _) => Some(ResourceBundle::Directory { path: path.clone() }),
        (None, Some(url), Some(commit)) => Some(ResourceBundle::Git {
            url: url.clone(),
            commit: commit.clone(),
        }),
        _ => None,
    };
    if let Some(id) = &args.run_id {
        run.run_id = RunId::new(id.as_str()).map_err(ProducerError::from)?;
        run.idempotency_key = format!("run:{id}");
    }
    if let Some(session) = &args.session {
        run.session_id = Some(session.parse().map_err(ProducerError::from)?);
    }
    let accepted = connect(cli).await?.create_run(&run).await?;
    let json = serde_json::json!({"run_id": run.run_id, "tenant": run.tenant, "duplicate": accepted.duplicate});
    print::report(cli, &json, || run.run_id.to_string());
    Ok(ExitCode::SUCCESS)
}
