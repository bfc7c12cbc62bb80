"""Building producer messages, and where and how they travel.

Builders with the Rust producer's defaults: UUIDv7 identifiers, idempotency
keys derived from identity (`run:<run_id>`, `cmd:<run_id>:<seq>`,
`cancel:<run_id>[:<command_id>]`), `created_at` now. Then the subject of a
message (`runfleet.cmd.<tenant>.<run_id>[.high|.low]`, …), its exact bytes
and its `Nats-Msg-Id`: `<idempotency_key>~<first 16 hex digits of the
SHA-256 of the bytes>`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import ValidationError
from .models import CommandCreate, CommandKind, ControlCancel, Priority, ResourceBundle, RunCreate
from .validate import find_non_json_number

PREFIX = "runfleet"
WORK_STREAM = "RUNFLEET_WORK"
CONTROL_STREAM = "RUNFLEET_CONTROL"
RECEIPT_STREAM = "RUNFLEET_RECEIPTS"
EVENT_STREAM = "RUNFLEET_EVENTS"
DEAD_LETTER_STREAM = "RUNFLEET_DLQ"

#: Subject family of each producer message kind.
_FAMILY = {"run.create": "run", "command.create": "cmd", "control.cancel": "ctl"}


def uuid7() -> str:
    """A UUIDv7 (time-ordered) as text, like the Rust producer's ids."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def now() -> str:
    """The current time, RFC 3339 in UTC with microseconds (`…T09:30:00.123456Z`)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def timestamp(value: str | _dt.datetime | None) -> str | None:
    """A `datetime` as RFC 3339 UTC text; a string is taken as it is."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; give one in UTC")
    return value.astimezone(_dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _drop_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def new_run(
    tenant: str,
    project: str,
    backend_profile: str,
    *,
    run_id: str | None = None,
    session_id: str | None = None,
    resource_bundle: ResourceBundle | None = None,
    budgets: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    priority: Priority | None = None,
    concurrency_key: str | None = None,
    created_at: str | _dt.datetime | None = None,
) -> RunCreate:
    """A `run.create` (not validated yet: publishing does that)."""
    run_id = run_id or uuid7()
    message = _drop_none(
        {
            "schema": "run.create",
            "version": 1,
            "run_id": run_id,
            "tenant": tenant,
            "project": project,
            "backend_profile": backend_profile,
            "session_id": session_id,
            "resource_bundle": resource_bundle,
            "budgets": dict(budgets) if budgets is not None else None,
            "labels": dict(labels) if labels is not None else None,
            "idempotency_key": idempotency_key or f"run:{run_id}",
            "created_at": timestamp(created_at) or now(),
            "priority": priority,
            "concurrency_key": concurrency_key,
        }
    )
    return message  # type: ignore[return-value]


def new_command(
    tenant: str,
    run_id: str,
    seq: int,
    payload: Mapping[str, Any],
    *,
    kind: CommandKind = "turn",
    command_id: str | None = None,
    idempotency_key: str | None = None,
    timeout_ms: int | None = None,
    not_before: str | _dt.datetime | None = None,
    schedule_to_start_ms: int | None = None,
    priority: Priority | None = None,
    created_at: str | _dt.datetime | None = None,
) -> CommandCreate:
    """Command `seq` of a run (not validated yet: publishing does that)."""
    message = _drop_none(
        {
            "schema": "command.create",
            "version": 1,
            "command_id": command_id or uuid7(),
            "tenant": tenant,
            "run_id": run_id,
            "seq": seq,
            "kind": kind,
            "payload": dict(payload) if isinstance(payload, Mapping) else payload,
            "idempotency_key": idempotency_key or f"cmd:{run_id}:{seq}",
            "timeout_ms": timeout_ms,
            "created_at": timestamp(created_at) or now(),
            "not_before": timestamp(not_before),
            "schedule_to_start_ms": schedule_to_start_ms,
            "priority": priority,
        }
    )
    return message  # type: ignore[return-value]


def new_cancel(
    tenant: str,
    run_id: str,
    command_id: str | None = None,
    reason: str | None = None,
    *,
    idempotency_key: str | None = None,
    created_at: str | _dt.datetime | None = None,
) -> ControlCancel:
    """A `control.cancel` of a run, or of one of its commands."""
    target = f"{run_id}:{command_id}" if command_id else run_id
    message = _drop_none(
        {
            "schema": "control.cancel",
            "version": 1,
            "tenant": tenant,
            "run_id": run_id,
            "command_id": command_id,
            "reason": reason,
            "idempotency_key": idempotency_key or f"cancel:{target}",
            "created_at": timestamp(created_at) or now(),
        }
    )
    return message  # type: ignore[return-value]


def subject_of(message: Mapping[str, Any]) -> str:
    """Where a (valid) producer message is published."""
    kind = message["schema"]
    subject = f"{PREFIX}.{_FAMILY[kind]}.{message['tenant']}.{message['run_id']}"
    priority = message.get("priority")
    if kind != "control.cancel" and priority in ("high", "low"):
        subject += f".{priority}"
    return subject


def encode(message: Mapping[str, Any]) -> bytes:
    """The exact bytes published: compact JSON, UTF-8.

    Raises `ValidationError` naming the field of a NaN or infinite float
    (`command.create: /payload/x: NaN and Infinity are not JSON`): Python
    would write `NaN`, which is not JSON and which the fleet dead-letters."""
    try:
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        found = find_non_json_number(message)
        if found is None:
            raise
        kind = message.get("schema") if isinstance(message, Mapping) else None
        raise ValidationError(kind if isinstance(kind, str) else "message", [found]) from None
    return text.encode("utf-8")


def msg_id(idempotency_key: str, payload: bytes) -> str:
    """The `Nats-Msg-Id` of a producer message: `<key>~<16 hex of sha256(payload)>`."""
    return f"{idempotency_key}~{hashlib.sha256(payload).hexdigest()[:16]}"


def receipt_subject(tenant: str, run_id: str) -> str:
    """`runfleet.receipt.<tenant>.<run_id>`."""
    return f"{PREFIX}.receipt.{tenant}.{run_id}"


def event_subject(tenant: str, run_id: str) -> str:
    """`runfleet.evt.<tenant>.<run_id>`."""
    return f"{PREFIX}.evt.{tenant}.{run_id}"


def dead_letter_subject(tenant: str) -> str:
    """`runfleet.dlq.<tenant>`."""
    return f"{PREFIX}.dlq.{tenant}"
