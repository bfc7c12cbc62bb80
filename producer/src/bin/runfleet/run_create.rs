//! `runfleet run create`: open a run; prints its id.

use std::process::ExitCode;

use clap::Args;
use runfleet_producer::{ProducerError, new_run};
use runfleet_schemas::{ResourceBundle, RunId};

use crate::cli::Cli;
use crate::{connect, print};

#[derive(Debug, Args)]
pub(crate) struct RunCreateArgs {
    /// The tenant owning the run.
    #[arg(long, env = "RUNFLEET_TENANT")]
    tenant: String,
    /// The project.
    #[arg(long)]
    project: String,
    /// The backend profile serving it.
    #[arg(long, default_value = "echo")]
    profile: String,
    /// The run's id (default: a fresh UUIDv7).
    #[arg(long)]
    run_id: Option<String>,
    /// A session to continue.
    #[arg(long)]
    session: Option<String>,
    /// A budget, `CURRENCY=AMOUNT` (repeatable), e.g. `--budget usd=5`.
    #[arg(long = "budget", value_parser = parse_budget)]
    budgets: Vec<(String, f64)>,
    /// Materialize this directory (on the worker's host) as the run's working directory.
    #[arg(long, conflicts_with = "bundle_git")]
    bundle_dir: Option<String>,
    /// Materialize this git repository, at `--bundle-commit`, as the run's working directory.
    #[arg(long, requires = "bundle_commit")]
    bundle_git: Option<String>,
    /// The commit of `--bundle-git`.
    #[arg(long, requires = "bundle_git")]
    bundle_commit: Option<String>,
}

fn parse_budget(text: &str) -> Result<(String, f64), String> {
    let (currency, amount) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected CURRENCY=AMOUNT, e.g. usd=5"))?;
    let amount: f64 = amount
        .parse()
        .map_err(|_| format!("{text:?}: {amount:?} is not a number"))?;
    if currency.is_empty() || !amount.is_finite() || amount < 0.0 {
        return Err(format!(
            "{text:?}: expected a currency and a non-negative amount"
        ));
    }
    Ok((currency.to_owned(), amount))
}

pub(crate) async fn run(cli: &Cli, args: &RunCreateArgs) -> anyhow::Result<ExitCode> {
    let mut run =
        new_run(&args.tenant, &args.project, &args.profile).map_err(ProducerError::from)?;
    run.budgets = args.budgets.iter().cloned().collect();
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
