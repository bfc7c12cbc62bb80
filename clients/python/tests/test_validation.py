"""Validation before publish: errors name the JSON pointer and the cause, in
the fleet's own words (checked against the contract's example files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runfleet import ValidationError, new_cancel, new_command, new_run, validate
from runfleet.validate import parse

EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples"
PRODUCER_KINDS = ("run.create", "command.create", "control.cancel")


def error_of(kind: str, message: object) -> str:
    with pytest.raises(ValidationError) as caught:
        validate(kind, message)
    return str(caught.value)


def test_seq_zero_names_the_field_and_the_bound() -> None:
    command = new_command("acme", "r1", 0, {"text": "hi"})
    assert error_of("command.create", command) == "command.create: /seq: must be at least 1, found 0"


def test_wrong_type_missing_and_unknown_fields() -> None:
    command = dict(new_command("acme", "r1", 1, {}))
    command["payload"] = "fix the bug"
    assert error_of("command.create", command) == "command.create: /payload: expected object, found string"
    del command["payload"]
    command["palyoad"] = {}
    assert error_of("command.create", command) == "command.create: /payload: required field is missing; /palyoad: unknown field"


def test_bad_identifier_enum_and_timestamp() -> None:
    assert error_of("command.create", new_command("acme.>", "r1", 1, {})) == (
        'command.create: /tenant: "acme.>" does not match the pattern ^[A-Za-z0-9_-]{1,128}$'
    )
    assert error_of("command.create", new_command("acme", "r1", 1, {}, kind="chat")) == (  # type: ignore[arg-type]
        'command.create: /kind: expected one of "turn", "steer", "close", found "chat"'
    )
    assert error_of("run.create", new_run("acme", "web", "echo", created_at="yesterday")) == (
        'run.create: /created_at: expected a date-time string, found "yesterday"'
    )
    bundle = {"kind": "s3", "bucket": "b"}
    assert error_of("run.create", new_run("acme", "web", "echo", resource_bundle=bundle)) == (  # type: ignore[arg-type]
        'run.create: /resource_bundle/kind: expected one of "directory", "git", found "s3"'
    )


def test_nul_is_refused_naming_the_field() -> None:
    err = error_of("command.create", new_command("acme", "r1", 1, {"text": "a\0b"}))
    assert err.startswith("command.create: /payload/text: contains U+0000 (NUL)"), err


def test_the_error_carries_the_pointer() -> None:
    with pytest.raises(ValidationError) as caught:
        validate("control.cancel", new_cancel("acme", "r1", idempotency_key="x", created_at="2026-01-01T00:00:00Z") | {"version": 2})
    assert caught.value.pointer == "/version"
    assert caught.value.kind == "control.cancel"
    assert str(caught.value) == "control.cancel: /version: expected 1, found 2"


@pytest.mark.parametrize(
    "path",
    sorted(p for kind in PRODUCER_KINDS for p in (EXAMPLES / "invalid" / kind).glob("*.json")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_invalid_examples_are_refused_with_the_documented_error(path: Path) -> None:
    expected = path.with_suffix(".error").read_text(encoding="utf-8").strip()
    with pytest.raises(ValidationError) as caught:
        parse(path.parent.name, path.read_bytes())
    if "invalid JSON" in expected:  # the parser's own words differ between languages
        assert str(caught.value).startswith(f"{path.parent.name}: invalid JSON: ")
    else:
        assert str(caught.value) == expected


@pytest.mark.parametrize(
    "path",
    sorted(p for kind in PRODUCER_KINDS for p in (EXAMPLES / "valid" / kind).glob("*.json")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_valid_examples_are_accepted(path: Path) -> None:
    assert parse(path.parent.name, path.read_bytes()) == json.loads(path.read_bytes())


def test_builders_make_valid_messages() -> None:
    run = new_run("acme", "web", "echo", labels={"a": "b"}, budgets={"usd": 2.5}, priority="high")
    validate("run.create", run)
    assert run["idempotency_key"] == f"run:{run['run_id']}"
    command = new_command("acme", run["run_id"], 3, {"text": "hi"}, timeout_ms=1000)
    validate("command.create", command)
    assert command["idempotency_key"] == f"cmd:{run['run_id']}:3"
    cancel = new_cancel("acme", run["run_id"], command["command_id"], "enough")
    validate("control.cancel", cancel)
    assert cancel["idempotency_key"] == f"cancel:{run['run_id']}:{command['command_id']}"
