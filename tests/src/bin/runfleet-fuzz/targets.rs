//! The fuzz targets: each parser that takes bytes from outside, its seeds,
//! and the property checked on every input (beyond "does not panic").

use std::path::Path;

use runfleet_schemas::{
    CommandCreate, Contract, ControlCancel, DeadLetter, Event, Message, MessageKind, Receipt,
    RunCreate, decode, decode_any, decode_validated, headers, subjects,
};
use runfleet_worker::config::Settings;
use runfleet_worker::fuzzing::{self, Redaction};

/// What a target does with one input: true when the parser accepted it
/// (for the summary: a fuzzer that never gets past the parser's front
/// door tests little).
pub type Check = fn(&Targets, &[u8]) -> bool;

/// One target: its name, seeds and check.
pub struct Target {
    /// Its name in the summary.
    pub name: &'static str,
    /// The inputs mutation starts from.
    pub seeds: Vec<Vec<u8>>,
    /// The property.
    pub check: Check,
    /// Its share of the inputs (weights add up over all targets).
    pub weight: usize,
}

/// State the checks share (built once: a redactor compiles a regex).
pub struct Targets {
    redaction: Redaction,
}

/// Secrets the redaction target hides (also put into its seeds).
const SECRETS: &[&str] = &["s3cr3t-T0ken", "hunter2hunter2", "xoxb-1234-abcd"];

impl Targets {
    /// The shared state.
    pub fn new() -> Targets {
        Targets {
            redaction: Redaction::new(SECRETS),
        }
    }
}

/// Every target, seeded from the repository (`schemas/examples/`,
/// `deploy/worker.toml`) and from the protocol's documented lines.
pub fn all(root: &Path) -> std::io::Result<Vec<Target>> {
    let mut messages = Vec::new();
    for dir in ["valid", "invalid"] {
        for kind in std::fs::read_dir(root.join("schemas/examples").join(dir))? {
            for file in std::fs::read_dir(kind?.path())? {
                let path = file?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    messages.push(std::fs::read(path)?);
                }
            }
        }
    }
    let config = std::fs::read(root.join("deploy/worker.toml"))?;
    Ok(vec![
        Target {
            name: "messages",
            seeds: messages,
            check: message,
            weight: 60,
        },
        Target {
            name: "process-lines",
            seeds: lines(),
            check: process_line,
            weight: 10,
        },
        Target {
            name: "config",
            seeds: vec![
                config,
                b"concurrency = 4\n[profiles.echo]\nkind = \"echo\"\n".to_vec(),
            ],
            check: config_file,
            weight: 5,
        },
        Target {
            name: "subjects-headers",
            seeds: subjects_and_headers(),
            check: subject_or_header,
            weight: 10,
        },
        Target {
            name: "redaction",
            seeds: redaction_seeds(),
            check: redaction,
            weight: 15,
        },
    ])
}

/// A message: decoded as every kind and as whichever its `schema` names.
/// The typed fast path and the JSON Schema validator must agree, and what
/// decodes must encode to bytes that decode again to the same message.
fn message(_: &Targets, bytes: &[u8]) -> bool {
    let accepted = [
        agree::<RunCreate>(bytes),
        agree::<CommandCreate>(bytes),
        agree::<ControlCancel>(bytes),
        agree::<Receipt>(bytes),
        agree::<Event>(bytes),
        agree::<DeadLetter>(bytes),
    ];
    let any = decode_any(bytes);
    if let Ok(Message::DeadLetter(letter)) = &any {
        let _ = letter.original_bytes();
    }
    assert_eq!(
        any.is_ok(),
        accepted.iter().any(|a| *a),
        "decode_any and the typed decodes disagree"
    );
    any.is_ok()
}

/// Whether `T` accepts `bytes`, checking that both decodes agree.
fn agree<T: Contract + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> bool {
    let fast = decode::<T>(bytes);
    let slow = decode_validated::<T>(bytes);
    match (&fast, &slow) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{} decoded two ways differs", T::KIND),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(err)) => panic!(
            "{}: the typed decode accepts what the schema refuses: {err}",
            T::KIND
        ),
        (Err(err), Ok(_)) => panic!(
            "{}: the typed decode refuses what the schema accepts: {err}",
            T::KIND
        ),
    }
    let Ok(message) = fast else {
        return false;
    };
    let again = serde_json::to_vec(&message).expect("a decoded message encodes");
    match decode::<T>(&again) {
        Ok(decoded) => assert_eq!(decoded, message, "{} changed in a round trip", T::KIND),
        Err(err) => panic!("{}: its own encoding is refused: {err}", T::KIND),
    }
    true
}

fn lines() -> Vec<Vec<u8>> {
    [
        r#"{"type":"result","output":{"echo":"hi"}}"#,
        r#"{"type":"failure","message":"no","retryable":true}"#,
        r#"{"type":"step_begin","name":"fetch"}"#,
        r#"{"type":"step_end","name":"fetch","result":[1,2,3]}"#,
        r#"{"type":"step_failed","name":"fetch","message":"404"}"#,
        r#"{"type":"assistant_message","text":"hello"}"#,
        r#"{"type":"command_output","stream":"stderr","text":"warn"}"#,
        r#"{"type":"diff","path":"a.rs","patch":"@@ -1 +1 @@\n-a\n+b\n"}"#,
        r#"{"type":"progress","done":3,"total":10}"#,
        r#"{"type":"phase","name":"thinking"}"#,
        r#"{"type":"metric","name":"cost.usd","value":0.25}"#,
        r#"{"type":"backend_status","status":"ready","detail":"ok"}"#,
        "plain text output",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// A `process` program's stdout line.
fn process_line(_: &Targets, bytes: &[u8]) -> bool {
    fuzzing::process_line(bytes) != "output"
}

/// A worker configuration file: settings and profiles.
fn config_file(_: &Targets, bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let settings = Settings::from_file_text(&text).is_ok();
    fuzzing::profiles_file(&text) || settings
}

fn subjects_and_headers() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = MessageKind::ALL
        .iter()
        .map(|kind| format!("runfleet.{}.acme.r-1", subjects::family(*kind)).into_bytes())
        .collect();
    seeds.push(b"runfleet.dlq.acme".to_vec());
    seeds.push(headers::producer_msg_id("cmd:r1:1", b"{}").into_bytes());
    seeds.push(b"2026-12-01T10:00:00.123456Z".to_vec());
    seeds.push(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec());
    seeds
}

/// A subject, a `Nats-Msg-Id` and a `Runfleet-Waiting-Since` value.
fn subject_or_header(_: &Targets, bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let parsed = subjects::parse(&text);
    if let Some(parsed) = &parsed {
        assert!(
            !parsed.tenant.is_empty() && !parsed.tenant.contains('.'),
            "a parsed tenant is one token: {text:?}"
        );
    }
    let key = headers::idempotency_key_of(&text);
    assert!(text.starts_with(key), "the key is a prefix of the id");
    headers::waiting_since(&text).is_some() || parsed.is_some()
}

fn redaction_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        b"token=s3cr3t-T0ken and more".to_vec(),
        br#"{"s3cr3t-T0ken": 1, "nested": {"k": "hunter2hunter2"}}"#.to_vec(),
        br#"{"password": "p", "list": ["xoxb-1234-abcd", "\u0000"]}"#.to_vec(),
        b"Authorization: Bearer abc.def.ghi nats://user:pass@host:4222".to_vec(),
        b"AKIAABCDEFGHIJKLMNOP -----BEGIN PRIVATE KEY-----".to_vec(),
    ];
    seeds.extend(SECRETS.iter().map(|s| s.as_bytes().to_vec()));
    seeds
}

/// A program's text, redacted before it is stored.
fn redaction(targets: &Targets, bytes: &[u8]) -> bool {
    targets.redaction.check(&String::from_utf8_lossy(bytes))
}
