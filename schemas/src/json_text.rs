//! What a message's JSON text may not hold although JSON itself allows it.
//!
//! Two things pass a JSON parser and a JSON Schema but would break the
//! contract's promises further on, so [`check`] refuses them with the field
//! they are in:
//!
//! - **U+0000 (NUL)** in any string or key (`"a\u0000b"`): PostgreSQL's
//!   `text` and `jsonb` cannot store it, so a command holding one could be
//!   neither journaled nor answered. It is refused here, at the contract,
//!   instead of failing later in the database.
//! - **A key given twice in one object** (`{"text":"a","text":"b"}`): JSON
//!   parsers disagree on which one wins (serde keeps the last, others the
//!   first), so the producer and the fleet could read different messages.
//!
//! The check is one streaming pass over the bytes that builds nothing but the
//! keys of the object it is in.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::violation::Violation;

/// The first string or key holding U+0000, or the first repeated key, in
/// `bytes`; `None` when there is none (or when `bytes` is not JSON at all,
/// which the parser reports with its own words).
pub(crate) fn check(bytes: &[u8]) -> Option<Violation> {
    let mut found = None;
    let mut path = String::new();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walk = Walk {
        path: &mut path,
        found: &mut found,
    };
    // An error either is the violation found (recorded in `found`) or a
    // syntax error the caller's parser reports.
    let _ = walk.deserialize(&mut deserializer);
    found
}

/// The reason given for a string or key holding U+0000.
const NUL: &str =
    "contains U+0000 (NUL), which runfleet cannot store (PostgreSQL refuses it in text and jsonb)";

/// One value being walked: where it is, and where to record a violation.
struct Walk<'a> {
    /// The value's JSON pointer.
    path: &'a mut String,
    /// The first violation, once found.
    found: &'a mut Option<Violation>,
}

impl Walk<'_> {
    /// Records a violation at `pointer` and stops the walk.
    fn refuse<E: de::Error>(&mut self, pointer: String, reason: String) -> Result<(), E> {
        *self.found = Some(Violation { pointer, reason });
        Err(E::custom("refused"))
    }

    fn string<E: de::Error>(&mut self, text: &str) -> Result<(), E> {
        if text.contains('\0') {
            let pointer = self.path.clone();
            return self.refuse(pointer, NUL.to_owned());
        }
        Ok(())
    }
}

/// `key` as one JSON pointer segment (RFC 6901: `~` is `~0`, `/` is `~1`),
/// with U+0000 written as `\u0000` so that the error text can be stored.
fn segment(key: &str) -> String {
    key.replace('~', "~0")
        .replace('/', "~1")
        .replace('\0', "\\u0000")
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(mut self, text: &str) -> Result<(), E> {
        self.string(text)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let base = self.path.len();
        let mut index = 0usize;
        loop {
            self.path.truncate(base);
            self.path.push_str(&format!("/{index}"));
            let item = Walk {
                path: &mut *self.path,
                found: &mut *self.found,
            };
            if items.next_element_seed(item)?.is_none() {
                break;
            }
            index += 1;
        }
        self.path.truncate(base);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut entries: A) -> Result<(), A::Error> {
        let base = self.path.len();
        let mut seen: HashSet<std::borrow::Cow<'de, str>> = HashSet::new();
        while let Some(key) = entries.next_key::<std::borrow::Cow<'de, str>>()? {
            self.path.truncate(base);
            self.path.push('/');
            self.path.push_str(&segment(&key));
            if key.contains('\0') {
                let pointer = self.path.clone();
                return self.refuse(pointer, format!("the key {NUL}"));
            }
            if !seen.insert(key) {
                let pointer = self.path.clone();
                return self.refuse(
                    pointer,
                    "duplicate key: a key may appear only once in an object".to_owned(),
                );
            }
            let value = Walk {
                path: &mut *self.path,
                found: &mut *self.found,
            };
            entries.next_value_seed(value)?;
        }
        self.path.truncate(base);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> Option<String> {
        check(text.as_bytes()).map(|v| v.to_string())
    }

    #[test]
    fn accepts_ordinary_json() {
        assert_eq!(refusal(r#"{"a":[1,{"b":"c\\u0000"}],"d":null}"#), None);
        assert_eq!(refusal(r#"{"a":{"x":1},"b":{"x":2}}"#), None);
        assert_eq!(refusal("{not json"), None);
    }

    #[test]
    fn names_the_string_holding_nul() {
        assert_eq!(
            refusal(r#"{"payload":{"items":["ok","a\u0000b"]}}"#).unwrap(),
            format!("/payload/items/1: {NUL}")
        );
        assert!(
            refusal(r#"{"pay/lo~ad":{"k\u0000":1}}"#)
                .unwrap()
                .starts_with("/pay~1lo~0ad/k\\u0000: the key contains U+0000")
        );
    }

    #[test]
    fn names_the_repeated_key() {
        assert_eq!(
            refusal(r#"{"payload":{"text":"first","text":"second"}}"#).unwrap(),
            "/payload/text: duplicate key: a key may appear only once in an object"
        );
        assert!(
            refusal(r#"{"seq":1,"seq":1}"#)
                .unwrap()
                .starts_with("/seq: duplicate key")
        );
    }
}
