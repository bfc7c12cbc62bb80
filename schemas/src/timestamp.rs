//! Timestamps as the contract writes them: RFC 3339 `date-time`, exactly as
//! the JSON Schemas' `format: date-time` accepts them (chrono's own parser
//! also takes a space for the `T`, or an offset without its colon).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Reads an RFC 3339 timestamp, refusing what the schema's `date-time` refuses.
///
/// # Errors
/// When the string is not a strict RFC 3339 `date-time`.
pub(crate) fn strict<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    let separator_ok = matches!(text.as_bytes().get(10), Some(b'T' | b't'));
    // The offset is `Z`/`z` or `±hh:mm`.
    let offset_ok = text.ends_with(['Z', 'z'])
        || text
            .len()
            .checked_sub(3)
            .is_some_and(|colon| text.as_bytes()[colon] == b':');
    if !(separator_ok && offset_ok) {
        return Err(serde::de::Error::custom(format!(
            "{text:?} is not an RFC 3339 date-time"
        )));
    }
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.to_utc())
        .map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not an RFC 3339 date-time: {e}"))
        })
}

/// Reads an optional RFC 3339 timestamp (`null` or absent is `None`).
///
/// # Errors
/// When present and not a strict RFC 3339 `date-time`.
pub(crate) fn strict_optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(Deserialize)]
    struct Strict(#[serde(deserialize_with = "strict")] DateTime<Utc>);
    Ok(Option::<Strict>::deserialize(deserializer)?.map(|Strict(at)| at))
}
