//! Where a value came from, for errors that name the key and the layer;
//! and the `NATS_*` credentials layer.

use runfleet_nats::NatsAuth;

/// Figment's error, with the key, the value and where it came from.
pub(super) fn describe(err: &figment::Error) -> String {
    let text = err
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(figment::Source::File(path)) => path.display().to_string(),
                    _ => m.name.to_string(),
                })
                .unwrap_or_default();
            let source = if source.contains("Overrides") {
                "the environment or the command line".to_owned()
            } else if source.contains("Value") {
                "the NATS_* environment".to_owned()
            } else if source.contains("Settings") {
                "the defaults".to_owned()
            } else {
                source
            };
            // A secret's value never goes into a message, even a wrong one.
            let secret = key == "database_url" || key == "nats_url" || key.starts_with("nats.");
            let kind = if secret {
                "has the wrong type or shape (its value is not shown)".to_owned()
            } else {
                e.kind.to_string()
            };
            if secret {
                // Not `key: …`, which the redactor would take for a credential.
                return format!("{key} {kind} (from {source})");
            }
            match (key.is_empty(), source.is_empty()) {
                (false, false) => format!("{key}: {kind} (from {source})"),
                (false, true) => format!("{key}: {kind}"),
                _ => kind,
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    // A parse error quotes the offending line: scrub credential patterns.
    crate::redact::Redactor::default()
        .redact(&text)
        .into_owned()
}

/// The `NATS_*` credential variables (only those set).
pub(super) fn nats_env() -> serde_json::Value {
    let auth = NatsAuth::from_env();
    let mut value = serde_json::to_value(&auth).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| !v.is_null() && v != &serde_json::Value::Bool(false));
    }
    value
}
