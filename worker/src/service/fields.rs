//! Reading a request body's fields, with messages that name the field.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The fields of a request body, read with messages naming the field.
#[derive(Debug)]
pub(super) struct Fields(Map<String, Value>);

impl Fields {
    /// Parses `body` (empty = `{}`), refusing fields outside `allowed`.
    pub(super) fn parse(body: &[u8], allowed: &[&str]) -> Result<Fields, ApiError> {
        let map = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(ApiError::BadRequest(
                        "the request body must be a JSON object".into(),
                    ));
                }
                Err(err) => {
                    return Err(ApiError::BadRequest(format!(
                        "the request body is not JSON: {err}"
                    )));
                }
            }
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let known = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ApiError::BadRequest(format!(
                "unknown field `{unknown}` (fields: {known})"
            )));
        }
        Ok(Fields(map))
    }

    /// The field, `None` when absent or `null`.
    pub(super) fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required non-empty string.
    pub(super) fn text(&self, name: &str) -> Result<String, ApiError> {
        self.optional_text(name)?.ok_or_else(|| {
            ApiError::BadRequest(format!("field `{name}` is required (a non-empty string)"))
        })
    }

    /// An optional non-empty string.
    pub(super) fn optional_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::BadRequest(format!(
                "field `{name}` must be a non-empty string"
            ))),
        }
    }

    /// A whole number in `min..=max`, `default` when absent.
    pub(super) fn number(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "field `{name}` must be a whole number from {min} to {max}"
                    ))
                }),
        }
    }

    /// A boolean, `default` when absent.
    pub(super) fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::BadRequest(format!(
                "field `{name}` must be true or false"
            ))),
        }
    }
}

/// Converts a request number to a PostgreSQL bigint.
pub(super) fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_what_is_wrong() {
        let f = Fields::parse(
            br#"{"run_id": "r1", "limit": 0}"#,
            &["tenant", "run_id", "limit"],
        )
        .unwrap();
        let ApiError::BadRequest(m) = f.text("tenant").unwrap_err() else {
            panic!("a missing field is a bad request");
        };
        assert!(m.contains("`tenant`"), "{m}");
        let ApiError::BadRequest(m) = f.number("limit", 100, 1, 1000).unwrap_err() else {
            panic!("an out-of-range limit is a bad request");
        };
        assert!(m.contains("`limit`"), "{m}");
        assert_eq!(f.text("run_id").unwrap(), "r1");
        let ApiError::BadRequest(m) = Fields::parse(br#"{"runid": "x"}"#, &["run_id"]).unwrap_err()
        else {
            panic!("an unknown field is a bad request");
        };
        assert!(m.contains("`runid`"), "{m}");
        assert!(Fields::parse(b"", &[]).is_ok(), "an empty body is {{}}");
    }
}
