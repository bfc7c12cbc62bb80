//! `runfleet schedule create | list | pause | resume | delete`: recurring
//! runs, through the fleet's operator API.

use std::process::ExitCode;

use runfleet_producer::inspect;
use runfleet_schemas::api::{
    CatchUp, ScheduleAction, ScheduleAnswer, ScheduleCreateRequest, ScheduleListRequest,
    ScheduleUpdateRequest,
};

use crate::cli::{Cli, ScheduleCommand, ScheduleCreateArgs, ScheduleTarget};
use crate::{connect, input, print};

pub(crate) async fn run(cli: &Cli, command: &ScheduleCommand) -> anyhow::Result<ExitCode> {
    let request = match command {
        ScheduleCommand::Create(args) => match create_request(args) {
            Ok(request) => request,
            Err(why) => return Ok(print::invalid(cli, &why)),
        },
        ScheduleCommand::List { tenant } => {
            let producer = connect(cli).await?;
            let request = ScheduleListRequest {
                tenant: tenant.clone(),
            };
            let listed = inspect::call(producer.client(), &request).await?;
            print::report(cli, &listed, || {
                let mut text = format!("{} schedule(s)", listed.schedules.len());
                for s in &listed.schedules {
                    text.push_str(&format!("\n  {}", line(s)));
                }
                text
            });
            return Ok(ExitCode::SUCCESS);
        }
        ScheduleCommand::Pause(target) => return update(cli, target, ScheduleAction::Pause).await,
        ScheduleCommand::Resume(target) => {
            return update(cli, target, ScheduleAction::Resume).await;
        }
        ScheduleCommand::Delete(target) => {
            return update(cli, target, ScheduleAction::Delete).await;
        }
    };
    let producer = connect(cli).await?;
    let created = inspect::call(producer.client(), &request).await?;
    print::report(cli, &created, || format!("created: {}", line(&created)));
    Ok(ExitCode::SUCCESS)
}

fn create_request(args: &ScheduleCreateArgs) -> Result<ScheduleCreateRequest, String> {
    let payload = input::payload(&args.payload).map_err(|err| format!("{err:#}"))?;
    let catch_up = match args.catch_up.as_str() {
        "skip" => CatchUp::Skip,
        "once" => CatchUp::Once,
        other => return Err(format!("--catch-up must be skip or once, not {other:?}")),
    };
    let request = ScheduleCreateRequest {
        tenant: args.tenant.clone(),
        schedule_id: args.schedule_id.clone(),
        cron: args.cron.clone(),
        every: args.every.clone(),
        project: args.project.clone(),
        profile: args.profile.clone(),
        payload,
        priority: args.priority,
        catch_up,
    };
    runfleet_schemas::api::ApiRequest::check(&request).map_err(|err| err.to_string())?;
    Ok(request)
}

async fn update(
    cli: &Cli,
    target: &ScheduleTarget,
    action: ScheduleAction,
) -> anyhow::Result<ExitCode> {
    let producer = connect(cli).await?;
    let request = ScheduleUpdateRequest {
        tenant: target.tenant.clone(),
        schedule_id: target.schedule.clone(),
        action,
    };
    let answer = inspect::call(producer.client(), &request).await?;
    let done = match action {
        ScheduleAction::Pause => "paused",
        ScheduleAction::Resume => "resumed",
        ScheduleAction::Delete => "deleted",
    };
    print::report(cli, &answer, || format!("{done}: {}", line(&answer)));
    Ok(ExitCode::SUCCESS)
}

/// One schedule on one line.
fn line(s: &ScheduleAnswer) -> String {
    format!(
        "{}/{}  {}  {} {}  {}  catch-up {}  runs {}{}",
        s.tenant,
        s.schedule_id,
        s.spec,
        s.project,
        s.profile,
        s.priority,
        s.catch_up.as_str(),
        s.runs_started,
        if s.paused { "  (paused)" } else { "" }
    )
}
