//! Layering, errors that name the key, and secrets kept out of errors and dumps.

use super::*;

fn load(file: &str, overrides: Overrides) -> Result<Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.toml");
    std::fs::write(&path, file).unwrap();
    Settings::load(&Overrides {
        config_file: Some(path),
        ..overrides
    })
    .map_err(|e| e.to_string())
}

#[test]
fn layers_defaults_file_then_overrides() {
    let settings = load(
        "ack_wait = \"12s\"\nconcurrency = 5\n[profiles.echo]\nkind = \"echo\"\n",
        Overrides {
            concurrency: Some(7),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(settings.ack_wait, Duration::from_secs(12), "from the file");
    assert_eq!(settings.concurrency.get(), 7, "the override wins");
    assert_eq!(settings.max_deliver, 100, "the default");
    assert_eq!(settings.max_attempts, 10, "the default");
    assert!(settings.profiles.contains_key("echo"));
}

#[test]
fn errors_name_the_key() {
    let err = load("concurrency = \"many\"\n", Overrides::default()).unwrap_err();
    assert!(
        err.contains("concurrency") && err.contains("worker.toml"),
        "{err}"
    );
    let err = load("ack_wait = \"soon\"\n", Overrides::default()).unwrap_err();
    assert!(
        err.contains("ack_wait") && err.contains("not a duration"),
        "{err}"
    );
    let err = load("colour = 1\n", Overrides::default()).unwrap_err();
    assert!(err.contains("colour"), "{err}");
    let err = load("concurrency = 0\n", Overrides::default()).unwrap_err();
    // A count where 0 is meaningless is a non-zero type: the error names
    // the key, the rule and where the 0 came from.
    assert!(
        err.starts_with("configuration: concurrency: must be at least 1")
            && err.contains("worker.toml"),
        "{err}"
    );
    let err = load(
        "",
        Overrides {
            group_commits: Some(0),
            ..Overrides::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        "configuration: group_commits: must be at least 1 (from the environment or the command line)"
    );
    let err = load(
        "",
        Overrides {
            ack_wait: Some("x".into()),
            ..Overrides::default()
        },
    )
    .unwrap_err();
    assert!(err.contains("ack_wait"), "{err}");
}

#[test]
fn errors_never_echo_a_secret() {
    let err = load("[nats]\ntoken = 918273645\n", Overrides::default()).unwrap_err();
    assert!(
        err.contains("nats.token") && !err.contains("918273645"),
        "{err}"
    );
    let err = load(
        "database_url = \"postgres://a:TOMLPW@h/x\n",
        Overrides::default(),
    )
    .unwrap_err();
    assert!(!err.contains("TOMLPW"), "{err}");
}

#[test]
fn the_dump_masks_secrets() {
    let mut settings = Settings {
        database_url: "postgres://app:hunter2@db:5432/runfleet".into(),
        nats_url: "nats://worker:s3cret@n1:4222,nats://n2:4222".into(),
        ..Settings::default()
    };
    settings.nats.token = Some("t0k3n-value".into());
    let dump = settings.dump();
    for secret in ["hunter2", "s3cret", "t0k3n-value"] {
        assert!(!dump.contains(secret), "{secret} in\n{dump}");
    }
    assert!(dump.contains("@db:5432/runfleet"), "{dump}");
    assert!(dump.contains("ack_wait = \"10s\""), "{dump}");
    let query = Settings {
        database_url: "postgres://db/x?password=QueryPW1".into(),
        ..Settings::default()
    };
    assert!(!query.dump().contains("QueryPW1"));
}
