//! `runfleet-fuzz`: mutation fuzzing of every parser that takes outside
//! bytes, on stable Rust (`scripts/fuzz`).
//!
//! Each target's seeds (the contract's example messages, the deployed
//! configuration, the protocol's documented lines, subjects and headers)
//! are mutated by [`mutate::Mutator`] and fed to the target's check, which
//! must neither panic nor break its property ([`targets`]). A failing
//! input is written to `target/fuzz-failures/` and the run exits 1; make
//! each one a regression test (an example under `schemas/examples/invalid/`
//! or a unit test) before fixing it.
//!
//! ```text
//! runfleet-fuzz --inputs 1000000 --seed 1
//! fuzz target=messages inputs=600000 accepted=… failures=0
//! …
//! fuzz inputs=1000000 failures=0 seconds=…
//! ```

mod mutate;
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "runfleet-fuzz",
    about = "Fuzz runfleet's parsers of outside bytes"
)]
struct Cli {
    /// Inputs in all, shared among the targets by weight.
    #[arg(long, default_value_t = 1_000_000)]
    inputs: u64,
    /// The mutator's seed (the same seed replays the same inputs).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only this target.
    #[arg(long)]
    target: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = runfleet_tests::workspace_root();
    let all = match targets::all(&root) {
        Ok(all) => all,
        Err(err) => {
            eprintln!(
                "runfleet-fuzz: cannot read the seeds under {}: {err}",
                root.display()
            );
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|t| cli.target.as_deref().is_none_or(|name| name == t.name))
        .collect();
    if chosen.is_empty() {
        eprintln!("runfleet-fuzz: no such target");
        return ExitCode::from(2);
    }
    // Panics are counted and their inputs saved, not printed one by one.
    std::panic::set_hook(Box::new(|_| {}));
    let shared = targets::Targets::new();
    let failures_dir = root.join("target/fuzz-failures");
    let total_weight: u64 = chosen.iter().map(|t| t.weight as u64).sum();
    let started = Instant::now();
    let (mut inputs, mut failures) = (0u64, 0u64);
    for (n, target) in chosen.iter().enumerate() {
        let share = cli.inputs * target.weight as u64 / total_weight;
        let mut mutator = mutate::Mutator::new(cli.seed.wrapping_add(n as u64));
        // `accepted`: inputs the parser took (past its front door).
        let (mut accepted, mut failed) = (0u64, 0u64);
        for i in 0..share {
            // Every seed as it is first, then mutations.
            let input = match target.seeds.get(i as usize) {
                Some(seed) => seed.clone(),
                None => {
                    let seed = &target.seeds[mutator.below(target.seeds.len())];
                    let other = &target.seeds[mutator.below(target.seeds.len())];
                    mutator.mutate(seed, other)
                }
            };
            match catch_unwind(AssertUnwindSafe(|| (target.check)(&shared, &input))) {
                Ok(true) => accepted += 1,
                Ok(false) => {}
                Err(panic) => {
                    failed += 1;
                    if failed <= 20 {
                        report(&failures_dir, target.name, &input, &panic);
                    }
                }
            }
        }
        println!(
            "fuzz target={} inputs={share} accepted={accepted} failures={failed}",
            target.name
        );
        inputs += share;
        failures += failed;
    }
    println!(
        "fuzz inputs={inputs} failures={failures} seconds={:.1} seed={}",
        started.elapsed().as_secs_f64(),
        cli.seed
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Saves a failing input and says why it failed.
fn report(dir: &PathBuf, target: &str, input: &[u8], panic: &Box<dyn std::any::Any + Send>) {
    let why = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    let digest: u64 = input.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{digest:016x}.bin"));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, input);
    eprintln!(
        "FAILED target={target} input={} why={}",
        path.display(),
        why.chars().take(400).collect::<String>()
    );
}
