//! The contract tests: the committed JSON Schemas match the Rust types, every
//! valid example decodes (and round-trips), every invalid example is refused
//! with exactly the error written beside it.
//!
//! After changing a type, regenerate the schemas with
//! `cargo run -p runfleet-schemas --bin runfleet-schemas -- schemas/json`.

use std::fs;
use std::path::{Path, PathBuf};

use runfleet_schemas::{
    CommandCreate, Contract, ControlCancel, DeadLetter, DecodeError, Event, MessageKind, Receipt,
    RunCreate, decode, decode_any, generate,
};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(path, bytes)` of every file with `extension` under `examples/<which>/<kind>/`.
fn examples(which: &str, kind: MessageKind, extension: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = crate_dir().join("examples").join(which).join(kind.as_str());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| {
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no {which} examples in {}",
        dir.display()
    );
    files
}

fn decode_as(kind: MessageKind, bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
    fn typed<T: Contract>(bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
        decode::<T>(bytes).map(|message| serde_json::to_value(message).unwrap())
    }
    match kind {
        MessageKind::RunCreate => typed::<RunCreate>(bytes),
        MessageKind::CommandCreate => typed::<CommandCreate>(bytes),
        MessageKind::ControlCancel => typed::<ControlCancel>(bytes),
        MessageKind::Receipt => typed::<Receipt>(bytes),
        MessageKind::Event => typed::<Event>(bytes),
        MessageKind::DeadLetter => typed::<DeadLetter>(bytes),
    }
}

#[test]
fn committed_schemas_match_the_rust_types() {
    let dir = crate_dir().join("json");
    let mut committed_names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed_names.sort();
    let mut generated_names: Vec<_> = generate::files().into_iter().map(|(n, _)| n).collect();
    generated_names.sort();
    assert_eq!(
        committed_names, generated_names,
        "schemas/json holds other files than the types generate"
    );

    let drifted: Vec<String> = generate::files()
        .into_iter()
        .filter(|(name, generated)| {
            fs::read_to_string(dir.join(name)).unwrap_or_default() != *generated
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        drifted.is_empty(),
        "schemas/json drifted from the Rust types: {drifted:?}; regenerate with \
         `cargo run -p runfleet-schemas --bin runfleet-schemas -- schemas/json` and commit"
    );
}

#[test]
fn every_valid_example_decodes_and_round_trips() {
    for kind in MessageKind::ALL {
        for (path, bytes) in examples("valid", kind, "json") {
            let decoded =
                decode_as(kind, &bytes).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                normalize(original),
                normalize(decoded),
                "{} does not survive a round trip",
                path.display()
            );
            assert_eq!(
                decode_any(&bytes).unwrap().kind(),
                kind,
                "{}",
                path.display()
            );
        }
    }
}

/// Equal instants may be written differently (`.000Z`, `+00:00`); a `false`
/// default may be written or left out. Compare what the message means.
fn normalize(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, value)| !(key == "output_truncated" && *value == Value::Bool(false)))
                .map(|(key, value)| (key, normalize(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::String(text) => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(instant) => Value::String(instant.to_utc().to_rfc3339()),
            Err(_) => Value::String(text),
        },
        other => other,
    }
}

#[test]
fn every_invalid_example_is_refused_naming_the_field() {
    let mut checked = 0;
    for kind in MessageKind::ALL {
        for (path, bytes) in examples("invalid", kind, "json") {
            let expected = read_expected(&path.with_extension("error"));
            let err =
                decode_as(kind, &bytes).expect_err(&format!("{} was accepted", path.display()));
            assert_eq!(err.to_string(), expected, "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} invalid examples");
}

fn read_expected(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|err| {
            panic!(
                "{}: {err} (every invalid example needs one)",
                path.display()
            )
        })
        .trim_end()
        .to_owned()
}

/// Whether the typed fast path of `decode` accepts `bytes` as `kind`, and
/// whether the schema validator does.
fn both_paths(kind: MessageKind, bytes: &[u8]) -> (bool, bool) {
    fn typed<T: Contract>(bytes: &[u8]) -> (bool, bool) {
        (
            runfleet_schemas::decode::<T>(bytes).is_ok(),
            runfleet_schemas::decode_validated::<T>(bytes).is_ok(),
        )
    }
    match kind {
        MessageKind::RunCreate => typed::<RunCreate>(bytes),
        MessageKind::CommandCreate => typed::<CommandCreate>(bytes),
        MessageKind::ControlCancel => typed::<ControlCancel>(bytes),
        MessageKind::Receipt => typed::<Receipt>(bytes),
        MessageKind::Event => typed::<Event>(bytes),
        MessageKind::DeadLetter => typed::<DeadLetter>(bytes),
    }
}

/// Edge cases beside the examples: each is a change to a valid example.
fn edge_cases(kind: MessageKind) -> Vec<(String, Vec<u8>)> {
    use serde_json::{Value, json};
    let (_, base) = examples("valid", kind, "json").remove(0);
    let base: Value = serde_json::from_slice(&base).unwrap();
    let with = |field: &str, value: Value| {
        let mut message = base.clone();
        message[field] = value;
        (
            format!("{field} = {}", message[field]),
            serde_json::to_vec(&message).unwrap(),
        )
    };
    let mut cases = vec![
        with("created_at", json!("2026-01-01 10:00:00Z")),
        with("created_at", json!("2026-01-01t10:00:00z")),
        with("created_at", json!("2026-01-01T10:00:00+0100")),
        with("created_at", json!("2026-01-01T10:00:00.123456789+01:00")),
        with("created_at", json!("2026-12-31T23:59:60Z")),
        with("created_at", json!("2026-01-01T10:00Z")),
        with("created_at", json!("2026-02-30T10:00:00Z")),
        with("idempotency_key", json!("")),
        with("idempotency_key", json!("k".repeat(256))),
        with("idempotency_key", json!("k".repeat(257))),
        with("idempotency_key", json!("é".repeat(200))),
        with("idempotency_key", json!("é".repeat(257))),
        with("tenant", json!("a".repeat(128))),
        with("tenant", json!("a".repeat(129))),
        with("tenant", json!("ac me")),
        with("version", json!(1.0)),
        with("schema", json!("receipt")),
    ];
    match kind {
        MessageKind::CommandCreate => cases.extend([
            with("seq", json!(0)),
            with("seq", json!(1.0)),
            with("seq", json!(-1)),
            with("seq", json!(u64::MAX)),
            with("timeout_ms", json!(0)),
            with("timeout_ms", json!(1)),
            with("timeout_ms", Value::Null),
            with("payload", json!({"text": "a\u{0}b"})),
            with("kind", json!("Turn")),
        ]),
        MessageKind::RunCreate => cases.extend([
            with(
                "resource_bundle",
                json!({"kind": "git", "url": "u", "commit": "abcdef0"}),
            ),
            with(
                "resource_bundle",
                json!({"kind": "git", "url": "u", "commit": "ABCDEF0"}),
            ),
            with(
                "resource_bundle",
                json!({"kind": "git", "url": "u", "commit": "abcdef"}),
            ),
            with(
                "resource_bundle",
                json!({"kind": "git", "url": "", "commit": "abcdef0"}),
            ),
            with("resource_bundle", json!({"kind": "directory", "path": ""})),
            with("budgets", json!({"usd": 5})),
            with("budgets", json!({"usd": "5"})),
            with("session_id", Value::Null),
        ]),
        MessageKind::ControlCancel => cases.extend([
            with("reason", json!("r".repeat(1024))),
            with("reason", json!("r".repeat(1025))),
            with("reason", Value::Null),
            with("command_id", json!("c.1")),
        ]),
        _ => {}
    }
    cases
}

#[test]
fn the_typed_fast_path_accepts_exactly_what_the_schema_accepts() {
    let mut checked = 0;
    let mut disagreements = Vec::new();
    for kind in MessageKind::ALL {
        let mut inputs: Vec<(String, Vec<u8>)> = ["valid", "invalid"]
            .into_iter()
            .flat_map(|which| examples(which, kind, "json"))
            .map(|(path, bytes)| (path.display().to_string(), bytes))
            .collect();
        inputs.extend(edge_cases(kind));
        for (name, bytes) in inputs {
            let (fast, validated) = both_paths(kind, &bytes);
            if fast != validated {
                disagreements.push(format!(
                    "{kind} {name}: fast path {}, validator {}",
                    if fast { "accepts" } else { "refuses" },
                    if validated { "accepts" } else { "refuses" }
                ));
            }
            checked += 1;
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    assert!(checked > 100, "only {checked} inputs");
}
