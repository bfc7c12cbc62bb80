//! `runfleet signer add | list | remove | generate`: the keys that may sign
//! a tenant's cancels, when the fleet requires signed cancels
//! (`RUNFLEET_REQUIRE_SIGNED_CONTROL`), through the operator API; and a new
//! key pair. `runfleet cancel` (and the console) sign with the seed in
//! `RUNFLEET_SIGNING_KEY`.

use std::process::ExitCode;

use runfleet_producer::{Signer, inspect};
use runfleet_schemas::api::{
    ApiRequest, SignerAddRequest, SignerAnswer, SignerListRequest, SignerRemoveRequest,
};

use crate::cli::{Cli, SignerCommand};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, command: &SignerCommand) -> anyhow::Result<ExitCode> {
    match command {
        SignerCommand::Generate => {
            let (seed, signer) = Signer::generate();
            let public_key = signer.public_key();
            let json = serde_json::json!({"seed": seed, "public_key": public_key});
            print::report(cli, &json, || {
                format!(
                    "public key (register it: runfleet signer add <tenant> {public_key}):\n  {public_key}\n\
                     seed (secret: give it to the producer as RUNFLEET_SIGNING_KEY):\n  {seed}"
                )
            });
        }
        SignerCommand::Add {
            tenant,
            public_key,
            note,
        } => {
            let request = SignerAddRequest {
                tenant: tenant.clone(),
                public_key: public_key.clone(),
                note: note.clone(),
            };
            if let Err(why) = request.check() {
                return Ok(print::invalid(cli, &why.to_string()));
            }
            let producer = connect(cli).await?;
            let added = inspect::call(producer.client(), &request).await?;
            print::report(cli, &added, || format!("registered: {}", line(&added)));
        }
        SignerCommand::List { tenant } => {
            let producer = connect(cli).await?;
            let request = SignerListRequest {
                tenant: tenant.clone(),
            };
            let listed = inspect::call(producer.client(), &request).await?;
            print::report(cli, &listed, || {
                let mut text = format!("{} signer(s)", listed.signers.len());
                for signer in &listed.signers {
                    text.push_str(&format!("\n  {}", line(signer)));
                }
                text
            });
        }
        SignerCommand::Remove { tenant, public_key } => {
            let request = SignerRemoveRequest {
                tenant: tenant.clone(),
                public_key: public_key.clone(),
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

/// `acme  UABC…  added 2026-12-06T17:00:00Z  (ci deployer)`.
fn line(signer: &SignerAnswer) -> String {
    let note = signer
        .note
        .as_deref()
        .map_or_else(String::new, |n| format!("  ({n})"));
    format!(
        "{}  {}  added {}{note}",
        signer.tenant,
        signer.public_key,
        print::timestamp(&signer.added_at)
    )
}
