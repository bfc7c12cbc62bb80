//! `runfleet limit set | list | delete`: per-key concurrency limits,
//! through the fleet's operator API.

use std::process::ExitCode;

use runfleet_producer::inspect;
use runfleet_schemas::api::{
    ApiRequest, LimitAnswer, LimitDeleteRequest, LimitListRequest, LimitSetRequest,
};

use crate::cli::{Cli, LimitCommand};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, command: &LimitCommand) -> anyhow::Result<ExitCode> {
    match command {
        LimitCommand::Set {
            pattern,
            max_running,
            rate,
        } => {
            let request = LimitSetRequest {
                pattern: pattern.clone(),
                max_running: *max_running,
                rate_per_second: *rate,
            };
            if let Err(why) = request.check() {
                return Ok(print::invalid(cli, &why.to_string()));
            }
            let producer = connect(cli).await?;
            let set = inspect::call(producer.client(), &request).await?;
            print::report(cli, &set, || format!("set: {}", line(&set)));
        }
        LimitCommand::List => {
            let producer = connect(cli).await?;
            let listed = inspect::call(producer.client(), &LimitListRequest {}).await?;
            print::report(cli, &listed, || {
                let mut text = format!("{} limit(s)", listed.limits.len());
                for limit in &listed.limits {
                    text.push_str(&format!("\n  {}", line(limit)));
                }
                text
            });
        }
        LimitCommand::Delete { pattern } => {
            let request = LimitDeleteRequest {
                pattern: pattern.clone(),
            };
            if let Err(why) = request.check() {
                return Ok(print::invalid(cli, &why.to_string()));
            }
            let producer = connect(cli).await?;
            let removed = inspect::call(producer.client(), &request).await?;
            print::report(cli, &removed, || format!("removed: {}", line(&removed)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tenant:acme  max_running 4  rate 50/s`.
pub(crate) fn line(limit: &LimitAnswer) -> String {
    format!(
        "{}  {}",
        limit.pattern,
        describe(limit.max_running, limit.rate_per_second)
    )
}

/// `max_running 4  rate 50/s`, or what of it is set.
pub(crate) fn describe(max_running: Option<u32>, rate_per_second: Option<f64>) -> String {
    let mut parts = Vec::new();
    if let Some(n) = max_running {
        parts.push(format!("max_running {n}"));
    }
    if let Some(rate) = rate_per_second {
        parts.push(format!("rate {rate}/s"));
    }
    parts.join("  ")
}
