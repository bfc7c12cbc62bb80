//! Each setting is declared once (`worker/src/config/settings.rs`); the
//! README's settings table, `runfleet-worker --help` and `--dump-config`
//! follow from that declaration. This test keeps the README equal to the
//! table generated from it (`RUNFLEET_BLESS=1` rewrites the README's table)
//! and checks that every declared setting is a flag with its variable.

use clap::{Args, Command};
use runfleet_worker::config::declare::readme_table;
use runfleet_worker::config::{DECLARED, Overrides};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
const HEADER: &str = "| setting (flag / env) | default | meaning |";

/// The README's table: from its header line to the first line that is not a row.
fn readme_table_span(readme: &str) -> (usize, usize) {
    let start = readme
        .find(HEADER)
        .expect("the README has a settings table");
    let len: usize = readme[start..]
        .split_inclusive('\n')
        .take_while(|line| line.starts_with('|'))
        .map(str::len)
        .sum();
    (start, start + len)
}

#[test]
fn the_readme_table_is_the_declared_one() {
    let readme = std::fs::read_to_string(README).unwrap();
    let (start, end) = readme_table_span(&readme);
    let expected = readme_table();
    if readme[start..end] == expected {
        return;
    }
    if std::env::var_os("RUNFLEET_BLESS").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(README, updated).unwrap();
        return;
    }
    panic!(
        "the README's settings table differs from the declarations \
         (worker/src/config/settings.rs); rerun with RUNFLEET_BLESS=1 to \
         rewrite it. Expected:\n{expected}"
    );
}

#[test]
fn every_declared_setting_is_a_flag_with_its_variable_and_default() {
    let command = Overrides::augment_args(Command::new("runfleet-worker"));
    for setting in DECLARED {
        let flag = setting.key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag.as_str()))
            .unwrap_or_else(|| panic!("--{flag} is not a flag"));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(setting.env),
            "--{flag}: its variable"
        );
        assert_eq!(arg.is_hide_set(), setting.hidden, "--{flag}: hidden");
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        assert!(help.contains("[default: "), "--{flag}: {help}");
    }
    let flags = command.get_arguments().count();
    assert_eq!(
        flags,
        DECLARED.len() + 1,
        "every flag but --config is a declared setting"
    );
}
