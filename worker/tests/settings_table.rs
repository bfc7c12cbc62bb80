//! The README's settings table, `runfleet-worker --help` and the defaults
//! the worker runs with say the same: every flag of the one is in the
//! other with the same environment variable and the same default, and a
//! default the table gives as a value is the one the worker runs with.

use std::collections::BTreeMap;

use clap::{Args, Command};
use runfleet_worker::config::{Overrides, Settings};

/// One row of the README's table.
#[derive(Debug)]
struct Row {
    /// `--flag`, or `None` for a variable without a flag.
    flag: Option<String>,
    /// `RUNFLEET_…`, when the row names it.
    env: Option<String>,
    /// The default column, backticks removed.
    default: String,
    /// Whether the default column is one literal value (in backticks).
    literal: bool,
}

/// The rows of the table headed `| setting (flag / env) | default | meaning |`.
fn readme_rows() -> Vec<Row> {
    let readme = include_str!("../../README.md");
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.starts_with("| setting (flag / env) | default | meaning |"))
        .skip(2);
    let mut rows = Vec::new();
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(
            cells.len(),
            3,
            "README settings row with {} cells: {line}",
            cells.len()
        );
        let names: Vec<String> = cells[0]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        let flag = names.iter().find(|n| n.starts_with("--")).cloned();
        let env = names.iter().find(|n| !n.starts_with("--")).cloned();
        let default = cells[1].to_owned();
        let literal =
            default.starts_with('`') && default.ends_with('`') && default.matches('`').count() == 2;
        rows.push(Row {
            flag,
            env,
            default: default.replace('`', ""),
            literal,
        });
    }
    assert!(rows.len() > 20, "the README's settings table was not found");
    rows
}

/// Every flag of the worker's settings: `--flag` → (env, default named in its help, hidden).
fn help_flags() -> BTreeMap<String, (Option<String>, Option<String>, bool)> {
    let command = Overrides::augment_args(Command::new("runfleet-worker"));
    command
        .get_arguments()
        .filter_map(|arg| {
            let long = format!("--{}", arg.get_long()?);
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let default = help
                .split_once("[default: ")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(d, _)| d.to_owned());
            Some((long, (env, default, arg.is_hide_set())))
        })
        .collect()
}

#[test]
fn the_readme_table_and_the_help_name_the_same_settings() {
    let rows = readme_rows();
    let flags = help_flags();
    for row in &rows {
        let Some(flag) = &row.flag else {
            // A variable without a flag: a hidden one.
            let env = row
                .env
                .as_deref()
                .expect("a row names a flag or a variable");
            assert!(
                flags
                    .values()
                    .any(|(e, _, hidden)| e.as_deref() == Some(env) && *hidden),
                "README lists {env}, which is no hidden setting"
            );
            continue;
        };
        let Some((env, default, _)) = flags.get(flag) else {
            panic!("README lists {flag}, which runfleet-worker --help does not have");
        };
        assert_eq!(&row.env, env, "{flag}: the environment variable");
        let help_default = default.as_deref().unwrap_or("none");
        assert!(
            row.default.starts_with(help_default),
            "{flag}: README says the default is {:?}, --help says {help_default:?}",
            row.default
        );
    }
    for (flag, (env, _, hidden)) in &flags {
        let listed = rows
            .iter()
            .any(|r| r.flag.as_deref() == Some(flag.as_str()))
            || (*hidden && rows.iter().any(|r| r.env.is_some() && r.env == *env));
        assert!(listed, "{flag} is missing from the README's settings table");
    }
}

#[test]
fn defaults_given_as_values_are_the_ones_the_worker_uses() {
    // As `--dump-config` writes them (before it masks credentials).
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    let dumped: BTreeMap<String, String> = defaults
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), text)
        })
        .collect();
    for row in readme_rows().iter().filter(|r| r.literal) {
        let Some(flag) = &row.flag else { continue };
        let key = flag.trim_start_matches("--").replace('-', "_");
        let Some(value) = dumped.get(&key) else {
            panic!("{flag}: --dump-config shows no {key}");
        };
        let same = match (
            humantime::parse_duration(&row.default),
            humantime::parse_duration(value),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => row.default == *value,
        };
        assert!(
            same,
            "{flag}: README says {:?}, the worker's default is {value:?}",
            row.default
        );
    }
}
