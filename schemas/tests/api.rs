//! The operator API's types against their generated JSON Schemas: a
//! request and an answer of every endpoint validate against the committed
//! schema files and round-trip through JSON unchanged; requests the types
//! refuse, the schemas refuse too.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use runfleet_schemas::api::{
    ApiRequest, CommandAnswer, CommandGetRequest, CommandSummary, DeadLetterCounts, DeadLetterList,
    DeadLetterShown, DeadLetterSummary, DlqListRequest, DlqRedriveRequest, DlqShowRequest,
    EventsAfterRequest, EventsPage, FleetStats, FleetStatsRequest, KeyStats, LimitAnswer,
    LimitDeleteRequest, LimitList, LimitListRequest, LimitSetRequest, Redriven, RunStatusAnswer,
    RunStatusRequest, ScheduleAction, ScheduleAnswer, ScheduleCreateRequest, ScheduleList,
    ScheduleListRequest, ScheduleUpdateRequest, WorkerSummary, read_request,
};
use serde_json::{Value, json};

/// The committed schema of `endpoint`'s `side` (`request` or `response`).
fn committed(endpoint: &str, side: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("json")
        .join(format!("api.{endpoint}.{side}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap()
}

/// `value` is valid against the committed schema of `endpoint`'s `side`.
fn assert_valid(endpoint: &str, side: &str, value: &Value) {
    let errors: Vec<String> = validator(&committed(endpoint, side))
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{endpoint} {side} {value}: {errors:?}");
}

/// `request` and `answer` validate against `R`'s committed schemas and
/// read back as themselves; the request also passes the worker's reader.
fn round_trip<R>(request: R, answer: R::Response)
where
    R: ApiRequest + PartialEq + std::fmt::Debug,
    R::Response: PartialEq + std::fmt::Debug,
{
    let endpoint = R::ENDPOINT;
    assert_valid(
        endpoint,
        "request",
        &serde_json::to_value(&request).unwrap(),
    );
    let bytes = serde_json::to_vec(&request).unwrap();
    assert_eq!(read_request::<R>(&bytes).unwrap(), request, "{endpoint}");

    let answer_json = serde_json::to_value(&answer).unwrap();
    assert_valid(endpoint, "response", &answer_json);
    let back: R::Response = serde_json::from_value(answer_json).unwrap();
    assert_eq!(back, answer, "{endpoint}");
}

#[test]
fn every_endpoint_round_trips_through_its_schemas() {
    let at = Utc.with_ymd_and_hms(2026, 12, 6, 5, 0, 0).unwrap();
    round_trip(
        RunStatusRequest {
            tenant: "acme".into(),
            run_id: "r1".into(),
        },
        RunStatusAnswer {
            tenant: "acme".into(),
            run_id: "r1".into(),
            status: "claimed".into(),
            profile: "echo".into(),
            project: "p".into(),
            session_id: None,
            failure_kind: None,
            status_reason: Some("why".into()),
            next_seq: 2,
            spent: json!({"usd": 0.5}),
            budgets: json!({}),
            spec: json!({"schema": "run.create"}),
            created_at: at,
            updated_at: at,
            lease_holder: None,
            lease_expires_at: Some(at),
            commands_total: 1,
            commands: vec![CommandSummary {
                command_id: "c1".into(),
                seq: 1,
                kind: "turn".into(),
                status: "failed".into(),
                attempt: Some(1),
                worker_id: Some("w1".into()),
                started_at: Some(at),
                finished_at: None,
                failure: Some(json!({"kind": "backend-failed", "message": "no"})),
            }],
        },
    );
    round_trip(
        CommandGetRequest {
            tenant: "acme".into(),
            run_id: "r1".into(),
            command_id: "c1".into(),
        },
        CommandAnswer {
            tenant: "acme".into(),
            run_id: "r1".into(),
            command_id: "c1".into(),
            seq: 1,
            kind: "turn".into(),
            status: "completed".into(),
            attempt: Some(1),
            worker_id: Some("w1".into()),
            fencing_token: Some(3),
            idempotency_key: "k1".into(),
            message: json!({"schema": "command.create"}),
            created_at: at,
            started_at: Some(at),
            finished_at: Some(at),
            receipt: None,
            steps: vec!["receipt".into()],
        },
    );
    round_trip(
        EventsAfterRequest {
            tenant: "acme".into(),
            run_id: "r1".into(),
            after_seq: Some(4),
            limit: Some(1000),
        },
        EventsPage {
            tenant: "acme".into(),
            run_id: "r1".into(),
            after_seq: 4,
            last_seq: 9,
            next_after_seq: 5,
            more: true,
            events: vec![json!({"seq": 5})],
        },
    );
    let letter = DeadLetterSummary {
        dead_letter_id: "d1".into(),
        tenant: "acme".into(),
        reason: "run-not-found".into(),
        message: Some("no run".into()),
        subject: "runfleet.cmd.acme.r1".into(),
        created_at: at,
        redriven_at: None,
    };
    round_trip(
        DlqListRequest::default(),
        DeadLetterList {
            more: false,
            dead_letters: vec![letter],
        },
    );
    round_trip(
        DlqShowRequest {
            dead_letter_id: "d1".into(),
        },
        DeadLetterShown {
            dead_letter_id: "d1".into(),
            created_at: at,
            redriven_at: Some(at),
            dead_letter: json!({"schema": "dead-letter"}),
        },
    );
    round_trip(
        DlqRedriveRequest {
            dead_letter_id: "d1".into(),
        },
        Redriven {
            dead_letter_id: "d1".into(),
            subject: "runfleet.cmd.acme.r1".into(),
            stream: "RUNFLEET_WORK".into(),
            sequence: 12,
            duplicate: false,
            redriven_at: at,
        },
    );
    round_trip(
        FleetStatsRequest {},
        FleetStats {
            at,
            workers: vec![WorkerSummary {
                worker_id: "w1".into(),
                host: "h".into(),
                pid: 7,
                version: "0.1.0".into(),
                started_at: at,
                last_seen: at,
                stopped_at: None,
                alive: true,
                in_flight: 0,
            }],
            commands_by_status: [("completed".to_owned(), 2)].into(),
            runs_by_status: [("claimed".to_owned(), 1)].into(),
            dead_letters: DeadLetterCounts {
                pending: 1,
                redriven: 0,
            },
            keys: vec![KeyStats {
                key: "tenant:acme".into(),
                pending: 3,
                delayed: 1,
                running: 2,
                limited: 40,
                limit: Some("tenant:*".into()),
                max_running: Some(2),
                rate_per_second: Some(20.0),
                diverted: true,
            }],
        },
    );
    let schedule = ScheduleAnswer {
        tenant: "acme".into(),
        schedule_id: "nightly".into(),
        spec: "0 0 3 * * *".into(),
        project: "p".into(),
        profile: "echo".into(),
        payload: json!({"text": "hi"}),
        priority: Default::default(),
        catch_up: Default::default(),
        paused: false,
        deleted: false,
        runs_started: 4,
        last_occurrence: None,
        created_at: at,
    };
    round_trip(
        ScheduleCreateRequest {
            tenant: "acme".into(),
            schedule_id: "nightly".into(),
            cron: Some("0 0 3 * * *".into()),
            every: None,
            project: "p".into(),
            profile: "echo".into(),
            payload: [("text".to_owned(), json!("hi"))].into_iter().collect(),
            priority: Default::default(),
            catch_up: Default::default(),
        },
        schedule.clone(),
    );
    round_trip(
        ScheduleListRequest::default(),
        ScheduleList {
            schedules: vec![schedule.clone()],
        },
    );
    round_trip(
        ScheduleUpdateRequest {
            tenant: "acme".into(),
            schedule_id: "nightly".into(),
            action: ScheduleAction::Pause,
        },
        ScheduleAnswer {
            paused: true,
            last_occurrence: Some(at),
            ..schedule
        },
    );
    let limit = LimitAnswer {
        pattern: "tenant:*".into(),
        max_running: Some(4),
        rate_per_second: Some(50.0),
        updated_at: at,
        deleted: false,
    };
    round_trip(
        LimitSetRequest {
            pattern: "tenant:*".into(),
            max_running: Some(4),
            rate_per_second: Some(50.0),
        },
        limit.clone(),
    );
    round_trip(
        LimitListRequest {},
        LimitList {
            limits: vec![limit.clone()],
        },
    );
    round_trip(
        LimitDeleteRequest {
            pattern: "tenant:*".into(),
        },
        LimitAnswer {
            deleted: true,
            max_running: None,
            ..limit
        },
    );
}

#[test]
fn what_the_reader_refuses_the_schema_refuses() {
    let refused = [
        ("run.status", json!({"run_id": "r1"})),
        ("run.status", json!({"tenant": "", "run_id": "r1"})),
        (
            "run.status",
            json!({"tenant": "acme", "run_id": "r1", "extra": 1}),
        ),
        (
            "events.after",
            json!({"tenant": "acme", "run_id": "r1", "limit": 0}),
        ),
        (
            "events.after",
            json!({"tenant": "acme", "run_id": "r1", "limit": 1001}),
        ),
        ("dlq.list", json!({"limit": "5"})),
        ("fleet.stats", json!({"x": true})),
    ];
    for (endpoint, body) in refused {
        let bytes = serde_json::to_vec(&body).unwrap();
        let reader = match endpoint {
            "run.status" => read_request::<RunStatusRequest>(&bytes).err(),
            "events.after" => read_request::<EventsAfterRequest>(&bytes).err(),
            "dlq.list" => read_request::<DlqListRequest>(&bytes).err(),
            _ => read_request::<FleetStatsRequest>(&bytes).err(),
        };
        assert!(reader.is_some(), "{endpoint} {body}: the reader accepts it");
        assert!(
            !validator(&committed(endpoint, "request")).is_valid(&body),
            "{endpoint} {body}: the schema accepts it"
        );
    }
}

#[test]
fn an_answer_missing_a_nullable_field_is_refused_naming_it() {
    let letter = json!({
        "dead_letter_id": "d1", "tenant": "acme", "reason": "run-not-found",
        "message": null, "subject": "runfleet.cmd.acme.r1",
        "created_at": "2026-12-06T05:00:00Z",
    });
    let answer = json!({"more": false, "dead_letters": [letter]});
    let err = serde_json::from_value::<DeadLetterList>(answer.clone()).unwrap_err();
    assert!(err.to_string().contains("redriven_at"), "{err}");
    assert!(
        !validator(&committed("dlq.list", "response")).is_valid(&answer),
        "the schema requires it too"
    );
    let mut complete = answer;
    complete["dead_letters"][0]["redriven_at"] = Value::Null;
    assert!(serde_json::from_value::<DeadLetterList>(complete).is_ok());
}
