//! The fleet's operator API: the requests and answers of the workers' NATS
//! micro service `runfleet`, one pair of types per endpoint.
//!
//! Every endpoint is one core-NATS request on `runfleet.api.<endpoint>`
//! ([`API_PREFIX`], [`ApiRequest::ENDPOINT`]) whose body is the request as
//! JSON; the answer is the endpoint's response as JSON, or a micro-service
//! error (the `Nats-Service-Error` and `Nats-Service-Error-Code` headers,
//! an empty body). The worker answers with these types and the `runfleet`
//! CLI reads them, so a renamed field fails to compile rather than reading
//! as absent; the JSON Schemas of both sides are generated with the
//! messages' (`schemas/json/api.<endpoint>.request.json` and
//! `….response.json`) for tools in other languages.
//!
//! Requests refuse unknown fields (a misspelt field is not silently
//! ignored), read `null` as an absent field and an empty body as `{}`;
//! [`ApiRequest::check`] refuses what the types alone cannot (empty
//! identifiers, limits out of range), naming the field.
//!
//! | endpoint | request | response |
//! |---|---|---|
//! | `run.status` | [`RunStatusRequest`] | [`RunStatusAnswer`] |
//! | `command.get` | [`CommandGetRequest`] | [`CommandAnswer`] |
//! | `events.after` | [`EventsAfterRequest`] | [`EventsPage`] |
//! | `dlq.list` | [`DlqListRequest`] | [`DeadLetterList`] |
//! | `dlq.show` | [`DlqShowRequest`] | [`DeadLetterShown`] |
//! | `dlq.redrive` | [`DlqRedriveRequest`] | [`Redriven`] |
//! | `fleet.stats` | [`FleetStatsRequest`] | [`FleetStats`] |
//! | `schedule.create` | [`ScheduleCreateRequest`] | [`ScheduleAnswer`] |
//! | `schedule.list` | [`ScheduleListRequest`] | [`ScheduleList`] |
//! | `schedule.update` | [`ScheduleUpdateRequest`] | [`ScheduleAnswer`] |
//! | `limit.set` | [`LimitSetRequest`] | [`LimitAnswer`] |
//! | `limit.list` | [`LimitListRequest`] | [`LimitList`] |
//! | `limit.delete` | [`LimitDeleteRequest`] | [`LimitAnswer`] |
//! | `runs.list` | [`RunListRequest`] | [`RunList`] |
//! | `signer.add` | [`SignerAddRequest`] | [`SignerAnswer`] |
//! | `signer.list` | [`SignerListRequest`] | [`SignerList`] |
//! | `signer.remove` | [`SignerRemoveRequest`] | [`SignerAnswer`] |

mod limits;
mod requests;
mod responses;
mod runs;
mod schedules;
mod signers;

pub use limits::{
    KeyStats, LimitAnswer, LimitDeleteRequest, LimitList, LimitListRequest, LimitSetRequest,
    MAX_PATTERN,
};
pub use requests::{
    CommandGetRequest, DlqListRequest, DlqRedriveRequest, DlqShowRequest, EventsAfterRequest,
    FleetStatsRequest, MAX_LIMIT, RunStatusRequest,
};
pub use responses::{
    CommandAnswer, CommandSummary, DeadLetterCounts, DeadLetterList, DeadLetterShown,
    DeadLetterSummary, EventsPage, FleetStats, Redriven, RunStatusAnswer, WorkerSummary,
};
pub use runs::{MAX_RUNS_PAGE, RUN_STATUSES, RunList, RunListRequest, RunSummary};
pub use schedules::{
    CatchUp, ScheduleAction, ScheduleAnswer, ScheduleCreateRequest, ScheduleList,
    ScheduleListRequest, ScheduleUpdateRequest,
};
pub use signers::{
    MAX_NOTE, SignerAddRequest, SignerAnswer, SignerList, SignerListRequest, SignerRemoveRequest,
    is_user_public_key,
};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The subject prefix of every endpoint: `runfleet.api.<endpoint>`.
pub const API_PREFIX: &str = "runfleet.api";

/// A request to one endpoint of the operator API, and what it answers.
pub trait ApiRequest: Serialize + DeserializeOwned + JsonSchema + Send + Sync {
    /// The endpoint's subject below [`API_PREFIX`], e.g. `run.status`.
    const ENDPOINT: &'static str;
    /// What the endpoint answers.
    type Response: Serialize + DeserializeOwned + JsonSchema + Send;
    /// What the types alone do not refuse: the message names the field.
    ///
    /// # Errors
    /// The first field out of its bounds.
    fn check(&self) -> Result<(), RequestError>;
}

/// Why a request body is refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is JSON but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// The body is not JSON.
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    /// A field is missing or unknown (the message names it).
    #[error("{0}")]
    Fields(String),
    /// A field has the wrong type.
    #[error("field `{field}`: {problem}")]
    Type {
        /// The field's path.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A field is out of its bounds.
    #[error("field `{field}` {rule}")]
    Bounds {
        /// The field.
        field: String,
        /// The rule it breaks.
        rule: String,
    },
}

/// The subject of `R`'s endpoint: `runfleet.api.<endpoint>`.
pub fn subject<R: ApiRequest>() -> String {
    format!("{API_PREFIX}.{}", R::ENDPOINT)
}

/// Reads a request body as `R`: an empty body is `{}`; the message of a
/// refusal names the field (`field `tenant`: …`, `unknown field …`).
///
/// # Errors
/// When the body is not a JSON object of `R`'s fields, or fails [`ApiRequest::check`].
pub fn read_request<R: ApiRequest>(body: &[u8]) -> Result<R, RequestError> {
    let body: &[u8] = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => body,
        // serde would also read a struct from an array of its fields.
        Some(_) => return Err(RequestError::NotAnObject),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: R = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            RequestError::NotJson(inner.to_string())
        } else if path == "." || path.is_empty() {
            // Unknown and missing fields name themselves.
            RequestError::Fields(inner.to_string())
        } else {
            RequestError::Type {
                field: path,
                problem: inner.to_string(),
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|err| RequestError::NotJson(err.to_string()))?;
    request.check()?;
    Ok(request)
}

/// Every endpoint's request and response schema: `(endpoint, request, response)`.
pub fn schemas() -> Vec<(&'static str, serde_json::Value, serde_json::Value)> {
    fn pair<R: ApiRequest>() -> (&'static str, serde_json::Value, serde_json::Value) {
        // Answers are described as the workers write them: every field present.
        let answer = schemars::generate::SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator()
            .into_root_schema_for::<R::Response>()
            .to_value();
        let request = schemars::schema_for!(R).to_value();
        (R::ENDPOINT, request, answer)
    }
    vec![
        pair::<RunStatusRequest>(),
        pair::<CommandGetRequest>(),
        pair::<EventsAfterRequest>(),
        pair::<DlqListRequest>(),
        pair::<DlqShowRequest>(),
        pair::<DlqRedriveRequest>(),
        pair::<FleetStatsRequest>(),
        pair::<ScheduleCreateRequest>(),
        pair::<ScheduleListRequest>(),
        pair::<ScheduleUpdateRequest>(),
        pair::<LimitSetRequest>(),
        pair::<LimitListRequest>(),
        pair::<LimitDeleteRequest>(),
        pair::<RunListRequest>(),
        pair::<SignerAddRequest>(),
        pair::<SignerListRequest>(),
        pair::<SignerRemoveRequest>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_field() {
        let missing = read_request::<RunStatusRequest>(br#"{"run_id": "r1"}"#)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("`tenant`"), "{missing}");
        let unknown = read_request::<RunStatusRequest>(br#"{"runid": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("`runid`"), "{unknown}");
        let limit = read_request::<EventsAfterRequest>(
            br#"{"tenant": "acme", "run_id": "r1", "limit": 0}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(limit.contains("`limit`"), "{limit}");
        let typed = read_request::<RunStatusRequest>(br#"{"tenant": 5, "run_id": "r1"}"#)
            .unwrap_err()
            .to_string();
        assert!(typed.contains("`tenant`"), "{typed}");
        let empty = read_request::<RunStatusRequest>(br#"{"tenant": "", "run_id": "r1"}"#)
            .unwrap_err()
            .to_string();
        assert!(empty.contains("`tenant`"), "{empty}");
        let not_json = read_request::<RunStatusRequest>(b"{")
            .unwrap_err()
            .to_string();
        assert!(not_json.contains("not JSON"), "{not_json}");
        let array = read_request::<RunStatusRequest>(br#"["acme", "r1"]"#)
            .unwrap_err()
            .to_string();
        assert!(array.contains("JSON object"), "{array}");
        assert!(read_request::<FleetStatsRequest>(b"[]").is_err());
    }

    #[test]
    fn an_empty_body_is_an_empty_object_and_null_is_absent() {
        assert!(read_request::<FleetStatsRequest>(b"").is_ok());
        assert!(read_request::<FleetStatsRequest>(b" {} ").is_ok());
        let list = read_request::<DlqListRequest>(br#"{"tenant": null, "limit": null}"#).unwrap();
        assert_eq!(list, DlqListRequest::default());
        assert!(read_request::<FleetStatsRequest>(br#"{"x": 1}"#).is_err());
    }
}
