//! Output: text for people, one JSON object per line with `--json`.

use std::process::ExitCode;
use std::time::Duration;

use runfleet_schemas::{Receipt, TerminalCommandStatus};

use crate::cli::Cli;
use crate::{EXIT_INVALID, EXIT_NOT_COMPLETED};

/// Prints `json` with `--json` (one line, keys in order), else `text()`.
pub(crate) fn report<T: serde::Serialize>(cli: &Cli, json: &T, text: impl FnOnce() -> String) {
    if cli.json {
        println!("{}", serde_json::to_value(json).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

/// Says why the input is invalid; exit code 2.
pub(crate) fn invalid(cli: &Cli, reason: &str) -> ExitCode {
    if cli.json {
        println!("{}", serde_json::json!({"valid": false, "error": reason}));
    } else {
        eprintln!("invalid: {reason}");
    }
    ExitCode::from(EXIT_INVALID)
}

/// Prints a receipt; exit code 0 when it completed, 3 otherwise.
pub(crate) fn receipt(cli: &Cli, receipt: &Receipt) -> ExitCode {
    report(cli, receipt, || {
        let mut text = format!(
            "{} (command {}, seq {}, attempt {}, worker {})",
            status_word(receipt.status),
            receipt.command_id,
            receipt.seq,
            receipt.attempt,
            receipt.worker_id
        );
        if let Some(f) = &receipt.failure {
            text.push_str(&format!("\n{}: {}", f.kind, f.message));
        }
        if let Some(output) = &receipt.output {
            text.push_str(&format!("\noutput: {output}"));
        }
        if let Some(chunks) = &receipt.output_chunks {
            text.push_str(&format!(
                "\noutput: {} bytes in {} result_chunk events ({}; `runfleet wait --output FILE` writes it)",
                chunks.bytes, chunks.count, chunks.digest
            ));
        }
        text
    });
    if receipt.status == TerminalCommandStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_COMPLETED)
    }
}

/// A command status as the contract writes it.
pub(crate) fn status_word(status: TerminalCommandStatus) -> &'static str {
    runfleet_schemas::CommandStatus::from(status).as_str()
}

/// A timestamp as the answers' JSON writes it (RFC 3339, UTC).
pub(crate) fn timestamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A spinner with the elapsed time on stderr while a receipt is awaited
/// (hidden when stderr is not a terminal, or with `--json`).
pub(crate) fn waiting(cli: &Cli, command: &str, timeout: Duration) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if cli.json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(format!(
        "waiting up to {} for the receipt of {command}…",
        humantime::format_duration(timeout)
    ));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
