"""Validation before publish: errors name the JSON pointer and the cause, in
the fleet's own words (checked against the contract's example files)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runfleet import ValidationError, new_cancel, new_command, new_run, validate
from runfleet.messages import encode
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


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [
        ({"x": float("nan")}, "/payload/x"),
        ({"a": [1, {"b/c": float("-inf")}]}, "/payload/a/1/b~1c"),
        ({"x": float("inf")}, "/payload/x"),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_field(payload: dict[str, object], pointer: str) -> None:
    command = new_command("acme", "r1", 1, payload)
    expected = f"command.create: {pointer}: NaN and Infinity are not JSON"
    assert error_of("command.create", command) == expected
    # Nor are such bytes ever made: Python would write `NaN`, which is not JSON.
    with pytest.raises(ValidationError) as caught:
        encode(command)
    assert str(caught.value) == expected
    assert caught.value.pointer == pointer


def test_an_integer_beyond_a_float_is_refused() -> None:
    err = error_of("command.create", new_command("acme", "r1", 1, {"x": 10**400}))
    assert err.startswith("command.create: /payload/x: number out of range"), err
    # Big but finite numbers are JSON the fleet reads.
    validate("command.create", new_command("acme", "r1", 1, {"x": 1e308, "y": 2**64, "z": -1.0}))


@pytest.mark.parametrize("text", ['{"x":NaN}', '{"x":-Infinity}', '{"x":1e400}'])
def test_parse_refuses_what_is_not_json(text: str) -> None:
    command = json.dumps(new_command("acme", "r1", 1, {})).replace('"payload": {}', f'"payload": {text}')
    with pytest.raises(ValidationError, match=r"^command.create: invalid JSON: "):
        parse("command.create", command)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("seq", 1.0, "/seq: invalid type: floating point `1.0`, expected u64"),
        ("timeout_ms", 1000.0, "/timeout_ms: invalid type: floating point `1000.0`, expected u64"),
        ("schedule_to_start_ms", 5.0, "/schedule_to_start_ms: invalid type: floating point `5.0`, expected u64"),
        ("version", 1.0, "/version: invalid type: floating point `1.0`, expected u64"),
        ("seq", 2**64, "/seq: invalid type: floating point `1.8446744073709552e+19`, expected u64"),
        ("seq", 1.5, "/seq: expected integer, found number"),
        ("seq", 0.0, "/seq: must be at least 1, found 0.0"),
    ],
)
def test_a_float_in_an_integer_field_is_refused_as_the_fleet_does(field: str, value: object, expected: str) -> None:
    command = dict(new_command("acme", "r1", 1, {})) | {field: value}
    assert error_of("command.create", command) == f"command.create: {expected}"


def test_integer_fields_are_checked_after_the_schema_first_in_key_order() -> None:
    command = dict(new_command("acme", "r1", 1, {})) | {"timeout_ms": 5.0, "schedule_to_start_ms": 5.0, "seq": 2.0}
    assert error_of("command.create", command) == (
        "command.create: /schedule_to_start_ms: invalid type: floating point `5.0`, expected u64"
    )
    command["tmeout"] = 1
    assert error_of("command.create", command) == "command.create: /tmeout: unknown field"
    # A whole float where a float belongs is fine.
    validate("run.create", new_run("acme", "web", "echo", budgets={"usd": 2.0, "turns": 5}))


CLI = Path(os.environ.get("RUNFLEET_CLI") or EXAMPLES.parents[1] / "target" / "debug" / "runfleet")

SAME_AS_THE_FLEET: dict[str, dict[str, Any]] = {
    "seq-float": {"seq": 1.0},
    "seq-exponent": {"seq": 1e16},
    "seq-beyond-u64": {"seq": 2**64},
    "seq-fraction": {"seq": 1.5},
    "seq-zero-float": {"seq": 0.0},
    "timeouts-float": {"timeout_ms": 1000.0, "schedule_to_start_ms": 7.0},
    "version-and-seq-float": {"version": 1.0, "seq": 3.0},
    "payload-floats": {"payload": {"x": 1e308, "y": 2**64, "z": -1.0}},
    "float-and-unknown-field": {"seq": 1.0, "tmeout": 1},
}


@pytest.mark.skipif(not CLI.is_file(), reason=f"{CLI} not built (or set RUNFLEET_CLI)")
@pytest.mark.parametrize("case", sorted(SAME_AS_THE_FLEET))
def test_numbers_are_judged_as_runfleet_validate_judges_them(case: str, tmp_path: Path) -> None:
    command = dict(new_command("acme", "r1", 1, {}, command_id="c1", created_at="2026-11-21T09:30:01Z"))
    command |= SAME_AS_THE_FLEET[case]
    path = tmp_path / "message.json"
    path.write_bytes(json.dumps(command, separators=(",", ":")).encode())
    fleet = subprocess.run([str(CLI), "validate", str(path)], capture_output=True, text=True, timeout=60)
    fleet_says = (fleet.stdout + fleet.stderr).strip()
    try:
        parse("command.create", path.read_bytes())
        we_say = "valid command.create"
    except ValidationError as err:
        we_say = f"invalid: {err}"
    assert we_say == fleet_says
