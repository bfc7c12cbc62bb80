//! Redaction of credentials before anything is stored or published.
//!
//! Events, receipts, dead letters and logs pass through a [`Redactor`]:
//! credential patterns (URL passwords, `KEY=value` pairs whose key looks like
//! a credential, `Authorization` headers, well-known token formats, private
//! keys, NATS seeds) plus the known secret values the worker was configured
//! with are replaced by [`MARK`].
//!
//! Text is scrubbed with [`Redactor::redact`]; structured JSON with
//! [`Redactor::redact_value`], which also blanks every value under a
//! credential-like key. The worker installs a [`RedactingWriter`] as its
//! `tracing` writer, so every log line is scrubbed before it is written.
//!
//! The rules err towards over-redaction: `token: 5` or `max_tokens=100` lose
//! their value, because a key containing a credential word followed by `=` or
//! `:` is enough. Prose is left alone: "the password was wrong" has no `=` or
//! `:` right after the key.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexBuilder};
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

/// What replaces every secret.
pub const MARK: &str = "[REDACTED]";

/// Known secrets shorter than this many characters are ignored: they would
/// match too much ordinary text.
pub const MIN_SECRET_CHARS: usize = 4;

/// Words that make a key credential-like, matched case-insensitively anywhere
/// in the key (`DB_PASSWORD`, `X-Auth-Token`, `client_secret`).
const KEYWORDS: &str = r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth|credential|session[_-]?key|client[_-]?secret|bearer";

/// Credential-like keys, for [`Redactor::redact_value`].
static KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i:{KEYWORDS})")).expect("valid key pattern"));

/// Every credential pattern in one leftmost-first alternation, so a text is
/// scanned once and overlapping rules cannot redact each other's output.
static PATTERNS: LazyLock<Regex> = LazyLock::new(|| {
    // Terminal colours, which `tracing`'s fmt layer puts around field names.
    let ansi = r"(?:\x1b\[[0-9;]*m)*";
    let pem =
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\z)";
    let tokens = [
        r"gh[pousr]_[A-Za-z0-9]{20,}",
        r"github_pat_[A-Za-z0-9_]{20,}",
        r"xox[bpar]-[A-Za-z0-9-]{10,}",
        r"(?:AKIA|ASIA)[0-9A-Z]{16}",
        r"sk-(?:ant-)?[A-Za-z0-9_-]{20,}",
        r"AIza[0-9A-Za-z_-]{35}",
        r"[sr]k_(?:live|test)_[0-9A-Za-z]{10,}",
        r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]+)?",
        r"S[UAONC][A-Z2-7]{56}",
    ]
    .join("|");
    let schemes = r"https?|wss?|nats|tls|postgres(?:ql)?|rediss?|amqps?|mongodb(?:\+srv)?|mysql";
    let kv_prefix = format!(
        r#"(?:^|[^A-Za-z0-9_.:-])[A-Za-z0-9_.-]*(?i:{KEYWORDS})[A-Za-z0-9_.-]*{ansi}(?:\\?["'])?{ansi}[ \t]*(?::=|=>|[:=])[ \t]*{ansi}(?:Some\()?(?:(?i:bearer|basic|token|digest|negotiate)[ \t]+)?"#
    );
    let kv_value = r#"\\"(?:[^"\\\n]|\\[^"\n])+\\"|"(?:[^"\\\n]|\\.)+"|'[^'\n]+'|[^\s"',&\x1b]+"#;
    let all = format!(
        r#"{pem}|(?-u:\b)(?:{tokens})|(?P<url>(?i:(?-u:\b)(?:{schemes})://))[^\s/?#"'<>]+@|(?P<url2>(?i:(?-u:\b)[a-z][a-z0-9+.-]*://))[^\s/?#"'<>:@]*:[^\s/?#"'<>]*@|(?P<bearer>(?i:(?-u:\b)bearer)[ \t]+)[A-Za-z0-9._~+/-]{{16,}}=*|(?P<kv>{kv_prefix})(?P<val>{kv_value})"#
    );
    Regex::new(&all).expect("valid redaction pattern")
});

/// Replaces one match of [`PATTERNS`], keeping the parts that are not secret
/// (the scheme, the key and separator, the quotes).
fn replace(caps: &Captures<'_>) -> String {
    if let Some(scheme) = caps.name("url").or_else(|| caps.name("url2")) {
        format!("{}{MARK}@", scheme.as_str())
    } else if let Some(prefix) = caps.name("bearer") {
        format!("{}{MARK}", prefix.as_str())
    } else if let (Some(prefix), Some(value)) = (caps.name("kv"), caps.name("val")) {
        if names_no_secret(prefix.as_str()) {
            return caps[0].to_owned();
        }
        let quote = ["\\\"", "\"", "'"]
            .into_iter()
            .find(|q| value.as_str().starts_with(q))
            .unwrap_or("");
        format!("{}{quote}{MARK}{quote}", prefix.as_str())
    } else {
        MARK.to_owned()
    }
}

/// Whether a `key=` prefix matched by [`PATTERNS`] names one of the
/// [`NOT_SECRET_KEYS`] (`fencing_token=7` in a log line stays as it is).
fn names_no_secret(prefix: &str) -> bool {
    let key: String = prefix
        .chars()
        .skip_while(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .collect();
    NOT_SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

/// Scrubs credentials and known secret values from text and JSON.
///
/// Cheap to clone and to build: the credential patterns are compiled once per
/// process; only the known secrets are compiled per redactor.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Known secret values, deduplicated, longest first (so a secret wins
    /// over a shorter one it contains).
    secrets: Vec<String>,
    /// One literal alternation over `secrets`; `None` when there are none, or
    /// when it did not compile (then `secrets` are replaced one by one).
    known: Option<Regex>,
}

impl Redactor {
    /// A redactor for the credential patterns plus `known_secrets`, matched
    /// literally wherever they occur, even inside a longer word.
    ///
    /// Secrets shorter than [`MIN_SECRET_CHARS`] characters are ignored.
    pub fn new(known_secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = known_secrets
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        let known = (!secrets.is_empty()).then(|| {
            let alternation: Vec<String> = secrets.iter().map(|s| regex::escape(s)).collect();
            RegexBuilder::new(&alternation.join("|"))
                .size_limit(256 << 20)
                .build()
        });
        Redactor {
            secrets,
            known: known.and_then(Result::ok),
        }
    }

    /// A new redactor with this one's known secrets plus `more` (a backend
    /// profile's secrets on top of the worker's).
    pub fn with_secrets(&self, more: impl IntoIterator<Item = String>) -> Redactor {
        Redactor::new(self.secrets.iter().cloned().chain(more))
    }

    /// `text` with every secret replaced by [`MARK`] and every U+0000 by
    /// U+FFFD (PostgreSQL cannot store it, and everything on its way to
    /// storage passes here); borrowed when nothing matched, which is the
    /// common case.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_secrets(text) {
            Cow::Borrowed(text) => crate::text::storable(text),
            Cow::Owned(text) => Cow::Owned(crate::text::storable(&text).into_owned()),
        }
    }

    /// `text` with every secret replaced by [`MARK`].
    fn redact_secrets<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let known = match (&self.known, self.secrets.is_empty()) {
            (Some(re), _) => re.replace_all(text, MARK),
            (None, true) => Cow::Borrowed(text),
            (None, false) => self.secrets.iter().fold(Cow::Borrowed(text), |acc, s| {
                if acc.contains(s.as_str()) {
                    Cow::Owned(acc.replace(s.as_str(), MARK))
                } else {
                    acc
                }
            }),
        };
        let patterned = match PATTERNS.replace_all(&known, replace) {
            Cow::Owned(s) => Some(s),
            Cow::Borrowed(_) => None,
        };
        match patterned.map_or(known, Cow::Owned) {
            // Text that was already redacted (`password=[REDACTED]`).
            Cow::Owned(s) if s == text => Cow::Borrowed(text),
            out => out,
        }
    }

    /// Whether [`Redactor::redact`] would change `text`.
    pub fn contains_secret(&self, text: &str) -> bool {
        matches!(self.redact_secrets(text), Cow::Owned(_))
    }

    /// Redacts every string in `value`, recursively, and replaces the value of
    /// every credential-like key (`{"password": 1234}`) by the string
    /// [`MARK`] wholesale, objects and arrays included. `null` and booleans
    /// under such keys are kept: they hold nothing secret.
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(redacted) = self.redact(s) {
                    *s = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if is_credential_key(key) && !matches!(v, Value::Null | Value::Bool(_)) {
                        *v = Value::String(MARK.to_owned());
                    } else {
                        self.redact_value(v);
                    }
                }
                if map
                    .keys()
                    .any(|key| matches!(self.redact(key), Cow::Owned(_)))
                {
                    self.redact_keys(map);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

impl Redactor {
    /// Rebuilds `map` with its keys redacted (a secret can be a key:
    /// `{"<secret>": 1}`). Keys that become equal are told apart by a
    /// `#2`, `#3`… suffix, so no value is lost.
    fn redact_keys(&self, map: &mut serde_json::Map<String, Value>) {
        let entries = std::mem::take(map);
        for (key, value) in entries {
            let redacted = self.redact(&key).into_owned();
            let mut unique = redacted.clone();
            let mut n = 1;
            while map.contains_key(&unique) {
                n += 1;
                unique = format!("{redacted}#{n}");
            }
            map.insert(unique, value);
        }
    }
}

/// Keys that hold a credential word but never a secret (a fencing token is
/// a counter); their values are kept.
const NOT_SECRET_KEYS: [&str; 2] = ["fencing_token", "max_tokens"];

/// Whether the value under `key` is to be blanked wholesale.
fn is_credential_key(key: &str) -> bool {
    KEY.is_match(key) && !NOT_SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

impl std::fmt::Debug for Redactor {
    /// Prints how many secrets are known, never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("known_secrets", &self.secrets.len())
            .finish()
    }
}

/// A `tracing_subscriber` writer that redacts each log record before handing
/// it to `inner` (for example `std::io::stderr`).
///
/// The worker installs it with `tracing_subscriber::fmt().with_writer(..)` so
/// that every log line is scrubbed, whatever the format.
#[derive(Clone, Debug)]
pub struct RedactingWriter<M> {
    /// What is scrubbed.
    redactor: Redactor,
    /// Where the scrubbed records go.
    inner: M,
}

impl<M> RedactingWriter<M> {
    /// Scrubs with `redactor`, writes to writers made by `inner`.
    pub fn new(redactor: Redactor, inner: M) -> Self {
        RedactingWriter { redactor, inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = RedactingRecord<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingRecord::new(&self.redactor, self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingRecord::new(&self.redactor, self.inner.make_writer_for(meta))
    }
}

/// One log record on its way through a [`RedactingWriter`].
///
/// The fmt layer writes a record into a fresh writer and drops it, so the
/// bytes are buffered and redacted as a whole on drop (or on `flush`): a
/// record spanning lines, such as a PEM block, is still matched.
pub struct RedactingRecord<'a, W: Write> {
    /// What is scrubbed.
    redactor: &'a Redactor,
    /// The writer the scrubbed bytes go to.
    inner: W,
    /// The record so far.
    buf: Vec<u8>,
}

impl<'a, W: Write> RedactingRecord<'a, W> {
    /// An empty record for `inner`.
    fn new(redactor: &'a Redactor, inner: W) -> Self {
        RedactingRecord {
            redactor,
            inner,
            buf: Vec::new(),
        }
    }

    /// Redacts what was buffered (lossily, if it is not UTF-8) and writes it.
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let text = String::from_utf8_lossy(&buf);
        self.inner.write_all(self.redactor.redact(&text).as_bytes())
    }
}

impl<W: Write> Write for RedactingRecord<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingRecord<'_, W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write; the fmt layer ignores them too.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    /// Redacts `case` without its `«…»` markers and expects exactly the
    /// marked spans to be replaced.
    fn check(case: &str) {
        let input = case.replace(['«', '»'], "");
        let want = Regex::new("«[^»]*»").unwrap().replace_all(case, MARK);
        assert_eq!(Redactor::default().redact(&input), want, "{case}");
    }

    #[test]
    fn url_userinfo_loses_the_password() {
        for case in [
            "nats://«u:p»@h:4222",
            "postgres://«u:p»@h/db",
            "git clone https://«x-access-token:abc»@github.com/o/r.git",
            "HTTPS://«tok»@h/x",
            "redis://«:pw»@h, ftp://«a:b»@c",
            "ssh://git@github.com/o/r",
            "see https://h/x@y or mail a@b.c",
            "nats://h:4222",
        ] {
            check(case);
        }
    }

    #[test]
    fn credential_keys_lose_their_value() {
        for case in [
            "DB_PASSWORD=«hunter2» next",
            r#"{"api_key": "«abc 123»", "n": 1}"#,
            "client_secret = '«x y»'",
            "token: «5»",
            "?access_token=«abc»&x=1",
            "run --password=«pw»",
            r#"body="{\"secret\":\"«s»\"}""#,
            r#"Config { token: Some("«t»") }"#,
            "Authorization: Bearer «abc.def»",
            "authorization: Basic «dXNlcjpwYXNz»",
            "sent Bearer «abcdefghijklmnop1234»",
            "\x1b[3mpassword\x1b[0m\x1b[2m=\x1b[0m\"«pw»\"",
        ] {
            check(case);
        }
    }

    #[test]
    fn prose_is_left_alone() {
        for text in [
            "the password was wrong",
            "authentication failed",
            "token count 5 words",
            "INFO runfleet_worker::auth: connected",
            r#"{"password": ""}"#,
            "the bearer of bad news",
        ] {
            assert!(
                matches!(Redactor::default().redact(text), Cow::Borrowed(_)),
                "{text}"
            );
        }
    }

    #[test]
    fn token_formats_are_redacted_whole() {
        let seed = format!("SU{}", "A".repeat(56));
        let tokens = [
            "ghp_0123456789abcdefghijABCDEFGHIJ012345".to_owned(),
            format!("github_pat_{}", "a1_".repeat(10)),
            "xoxb-1234567890-abcdefghij".to_owned(),
            "AKIAIOSFODNN7EXAMPLE".to_owned(),
            "ASIAIOSFODNN7EXAMPLE".to_owned(),
            format!("sk-{}", "a".repeat(24)),
            format!("sk-ant-api03-{}", "b".repeat(24)),
            format!("AIza{}", "c".repeat(35)),
            format!("sk_live_{}", "d".repeat(24)),
            format!("rk_live_{}", "e".repeat(24)),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl".to_owned(),
            seed.clone(),
        ];
        for token in tokens {
            check(&format!("x «{token}» y"));
        }
        check("a\n«-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----»\nb");
        check("k: «-----BEGIN PRIVATE KEY-----\nMIIE»");
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.eyJqdGkiOiJYIn0.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        );
        let out = Redactor::default().redact(&creds);
        assert!(!out.contains("eyJ") && !out.contains(&seed), "{out}");
    }

    #[test]
    fn known_secrets_match_literally() {
        let red = Redactor::new([
            "p@ss.w*rd+".to_owned(),
            "abc".to_owned(),
            "swordfish".to_owned(),
        ]);
        assert_eq!(red.redact("x p@ss.w*rd+ y"), "x [REDACTED] y");
        assert_eq!(red.redact("pXssXwrd"), "pXssXwrd");
        assert_eq!(red.redact("myswordfishes"), "my[REDACTED]es");
        assert_eq!(
            red.redact("abc is too short to count"),
            "abc is too short to count"
        );
        let more = red.with_secrets(["swordfish-2".to_owned()]);
        assert_eq!(
            more.redact("swordfish-2 p@ss.w*rd+"),
            "[REDACTED] [REDACTED]"
        );
        assert_eq!(format!("{more:?}"), "Redactor { known_secrets: 3 }");
        assert!(!format!("{red:?}").contains("sword"));
    }

    #[test]
    fn redact_value_covers_nested_json() {
        let red = Redactor::new(["s3cr3t-value".to_owned()]);
        let mut value = json!({
            "password": 1234,
            "auth": {"user": "u", "pass": "p"},
            "auth_required": true,
            "api_key": null,
            "steps": [{"log": "DB_PASSWORD=hunter2"}, "nats://u:p@h", "s3cr3t-value"],
            "count": 3,
        });
        red.redact_value(&mut value);
        let want = json!({
            "password": "[REDACTED]",
            "auth": "[REDACTED]",
            "auth_required": true,
            "api_key": null,
            "steps": [{"log": "DB_PASSWORD=[REDACTED]"}, "nats://[REDACTED]@h", "[REDACTED]"],
            "count": 3,
        });
        assert_eq!(value, want);
    }

    #[test]
    fn nothing_matched_is_borrowed_and_redaction_is_idempotent() {
        let red = Redactor::new(["swordfish".to_owned()]);
        let text = "run 42 finished in 3s";
        assert!(matches!(red.redact(text), Cow::Borrowed(s) if std::ptr::eq(s, text)));
        assert!(!red.contains_secret(text));
        assert!(red.contains_secret("pw swordfish"));
        assert!(!red.contains_secret("DB_PASSWORD=[REDACTED]"));
    }

    #[test]
    fn secrets_used_as_keys_are_redacted() {
        let red = Redactor::new(["swordfish".to_owned()]);
        let mut value = json!({
            "swordfish": 1,
            "nested": [{"pw-swordfish": {"swordfish": "swordfish"}}],
            "[REDACTED]": "taken",
            "fencing_token": 7,
        });
        red.redact_value(&mut value);
        let text = value.to_string();
        assert!(!text.contains("swordfish"), "{text}");
        assert_eq!(value["[REDACTED]#2"], json!(1), "{text}");
        assert_eq!(value["[REDACTED]"], json!("taken"), "{text}");
        assert_eq!(
            value["nested"][0]["pw-[REDACTED]"]["[REDACTED]"],
            json!(MARK)
        );
        assert_eq!(value["fencing_token"], json!(7), "a counter, not a secret");
    }

    #[test]
    fn fencing_tokens_are_no_secret_in_text() {
        let red = Redactor::default();
        assert_eq!(
            red.redact("claimed fencing_token=12 api_token=abc"),
            "claimed fencing_token=12 api_token=[REDACTED]"
        );
    }

    #[test]
    fn nul_becomes_storable() {
        let red = Redactor::default();
        assert_eq!(red.redact("a\0b"), "a\u{FFFD}b");
        let mut value = json!({"k\u{0}": ["x\u{0}"]});
        red.redact_value(&mut value);
        assert_eq!(value, json!({"k\u{FFFD}": ["x\u{FFFD}"]}));
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_redacted() {
        for ansi in [false, true] {
            let buf = Shared::default();
            let sink = buf.clone();
            let writer = RedactingWriter::new(Redactor::default(), move || sink.clone());
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(ansi)
                .with_writer(writer)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!(
                    url = "nats://u:hunter2@h:4222",
                    password = "hunter3",
                    "connecting with token ghp_0123456789abcdefghijABCDEFGHIJ012345"
                );
            });
            let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert!(out.contains(MARK), "{out}");
            for secret in ["hunter2", "hunter3", "ghp_"] {
                assert!(!out.contains(secret), "{secret} in {out}");
            }
        }
    }
}
