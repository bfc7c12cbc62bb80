"""Checking a message against its JSON Schema before it is published.

The schemas are the package's copies of `schemas/json/` (package data). The
error text follows the fleet's own (the Rust `runfleet_schemas::decode`),
so a message refused here reads as the dead letter would have:

    command.create: /payload: expected object, found string
    command.create: /payload: required field is missing; /palyoad: unknown field
    run.create: /resource_bundle/kind: expected one of "directory", "git", found "s3"

Besides the schema, as the fleet does:

- a NaN or an infinite float, or an integer beyond a 64-bit float, is
  refused first: it has no JSON text (`json.dumps` would write `NaN`, which
  the fleet reads as invalid JSON) — `command.create: /payload/x: NaN and
  Infinity are not JSON`;
- a string or key holding U+0000 is refused (PostgreSQL cannot store it);
- after the schema, a float in a field the fleet reads as a Rust `u64`
  (`version`, `seq`, `timeout_ms`, `schedule_to_start_ms`), even a whole one
  such as `1.0`, or an integer above 2**64 − 1, is refused as the fleet's
  deserializer words it (JSON Schema counts `1.0` as an integer; serde does
  not), the first in key order:

    command.create: /seq: invalid type: floating point `1.0`, expected u64
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped, unused-ignore]
from jsonschema.exceptions import ValidationError as SchemaError  # type: ignore[import-untyped, unused-ignore]

from .errors import ValidationError

#: At most this many violations are listed in one error.
MAX_LISTED_VIOLATIONS = 5

NUL = "contains U+0000 (NUL), which runfleet cannot store (PostgreSQL refuses it in text and jsonb)"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

_FORMATS = FormatChecker(formats=())

#: Schema `format`s of integers the fleet reads as Rust integers, and their largest value.
_RUST_INTEGERS = {"uint64": ("u64", (1 << 64) - 1)}

NOT_JSON_NUMBER = "NaN and Infinity are not JSON"
OUT_OF_RANGE = "number out of range (beyond a 64-bit float: the fleet cannot read it)"


@_FORMATS.checks("date-time")  # type: ignore[misc, untyped-decorator, unused-ignore]
def _is_date_time(value: object) -> bool:
    """RFC 3339 `date-time` (what the fleet's validator accepts)."""
    if not isinstance(value, str):
        return True
    m = _RFC3339.match(value)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        _dt.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


@_FORMATS.checks("uint64")  # type: ignore[misc, untyped-decorator, unused-ignore]
def _is_uint64(value: object) -> bool:
    """What serde reads as a `u64`: a JSON integer (no fraction, no exponent) up to 2**64 − 1."""
    return _rust_integer_problem(value, "uint64") is None


def _rust_integer_problem(value: object, format_name: str) -> str | None:
    """The fleet's deserializer's words for a number it cannot read as a Rust integer."""
    rust, largest = _RUST_INTEGERS[format_name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # the schema's `type` names it
    if isinstance(value, float) or value > largest:
        try:
            shown = repr(float(value))
        except OverflowError:
            return OUT_OF_RANGE
        return f"invalid type: floating point `{shown}`, expected {rust}"
    return None


@cache
def schema_of(kind: str) -> dict[str, Any]:
    """The JSON Schema of `kind` (`command.create`, …) from the package data."""
    try:
        text = resources.files("runfleet").joinpath("schemas").joinpath(f"{kind}.json").read_text("utf-8")
    except FileNotFoundError:
        raise ValueError(f"no schema for message kind {kind!r}") from None
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(schema_of(kind), format_checker=_FORMATS)


def check(kind: str, message: Any) -> None:
    """Raises `ValidationError` naming every problem (at most five) of `message` as `kind`."""
    violations = violations_of(kind, message)
    if violations:
        raise ValidationError(kind, violations)


def parse(kind: str, data: bytes | str) -> Any:
    """Reads `data` (JSON text) as a `kind` message, as the fleet would: the
    text checks (invalid JSON, a repeated key) first, then `check`.

    Raises `ValidationError`; returns the parsed message."""
    try:
        value = json.loads(
            data, object_pairs_hook=_Object, parse_constant=_not_json, parse_float=_finite_float, parse_int=_finite_int
        )
    except ValueError as err:
        raise ValidationError(kind, [("", f"invalid JSON: {err}")]) from None
    repeated = _find_repeated(value, "")
    if repeated is not None:
        raise ValidationError(kind, [(repeated, "duplicate key: a key may appear only once in an object")])
    check(kind, value)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _finite_int(text: str) -> int:
    value = int(text)
    if find_non_json_number(value) is not None:
        raise ValueError(f"number out of range: {text[:20]}…")
    return value


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers its first repeated key."""

    repeated: str | None = None

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        for key, value in pairs:
            if key in self and self.repeated is None:
                self.repeated = key
            self[key] = value


def _find_repeated(value: Any, here: str) -> str | None:
    if isinstance(value, _Object):
        if value.repeated is not None:
            return f"{here}/{_segment(value.repeated)}"
        value = dict(value)
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = list(value.items())
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return None
    for key, item in items:
        found = _find_repeated(item, f"{here}/{_segment(key)}")
        if found is not None:
            return found
    return None


def _segment(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def violations_of(kind: str, message: Any) -> list[tuple[str, str]]:
    """The (pointer, cause) pairs wrong with `message` as a `kind` message."""
    number = find_non_json_number(message)
    if number is not None:
        return [number]
    nul = _find_nul(message, "")
    if nul is not None:
        return [(nul, NUL)]
    errors = sorted(_validator(kind).iter_errors(message), key=_keyword_rank)
    violations: list[tuple[str, str]] = []
    # What the fleet's deserializer refuses once the schema has passed.
    deserializing: list[tuple[str, str]] = []
    for err in errors:
        if err.validator == "format" and err.validator_value in _RUST_INTEGERS:
            problem = _rust_integer_problem(err.instance, str(err.validator_value))
            deserializing.append((_pointer(err.absolute_path), problem or err.message))
            continue
        for v in _violations(err):
            if v not in violations:
                violations.append(v)
    # A message of another kind fails everywhere; its `schema` says it all.
    wrong_kind = [v for v in violations if v[0] == "/schema"]
    if wrong_kind:
        return wrong_kind[:1]
    if violations:
        return violations[:MAX_LISTED_VIOLATIONS]
    if isinstance(message, dict):
        version = message.get("version")
        if isinstance(version, float):  # the const 1 admits 1.0; the fleet's u64 does not
            deserializing.append(("/version", _rust_integer_problem(version, "uint64") or "expected u64"))
    # serde stops at the first, in key order (a JSON object is a sorted map there).
    return sorted(deserializing)[:1]


def _keyword_rank(err: SchemaError) -> int:
    """The fleet lists missing fields first, then bad ones, then unknown ones."""
    keyword = err.schema_path[0] if err.schema_path else ""
    return {"required": 0, "properties": 1, "additionalProperties": 3}.get(str(keyword), 2)


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _violations(err: SchemaError) -> list[tuple[str, str]]:
    """A schema error as the fleet words it (one error may name several fields)."""
    here = _pointer(err.absolute_path)
    found: Any = err.instance
    kind: Any = err.validator
    value: Any = err.validator_value
    schema: Any = err.schema
    if kind == "required":
        missing = [p for p in value if isinstance(found, dict) and p not in found]
        return [(f"{here}/{p}", "required field is missing") for p in missing]
    if kind == "additionalProperties":
        known = set(schema.get("properties", {}) if isinstance(schema, dict) else {})
        extra = [k for k in found if k not in known] if isinstance(found, dict) else []
        if len(extra) == 1:
            return [(f"{here}/{extra[0]}", "unknown field")]
        return [(here, "unknown fields " + ", ".join(extra))]
    if kind == "type":
        names = [value] if isinstance(value, str) else list(value)
        names = sorted(names, key=lambda n: n != "null")
        return [(here, f"expected {' or '.join(names)}, found {_type_name(found)}")]
    if kind == "const":
        return [(here, f"expected {_json(value)}, found {_json(found)}")]
    if kind == "enum":
        return [(here, f"expected one of {', '.join(_json(v) for v in value)}, found {_json(found)}")]
    if kind == "pattern":
        return [(here, f"{_json(found)} does not match the pattern {value}")]
    if kind == "minimum":
        return [(here, f"must be at least {_json(value)}, found {_json(found)}")]
    if kind == "maximum":
        return [(here, f"must be at most {_json(value)}, found {_json(found)}")]
    if kind == "minLength":
        if value == 1:
            return [(here, "must not be empty")]
        return [(here, f"must be at least {value} characters long")]
    if kind == "maxLength":
        return [(here, f"must be at most {value} characters long")]
    if kind == "format":
        return [(here, f"expected a {value} string, found {_json(found)}")]
    if kind in ("oneOf", "anyOf"):
        union = _tagged_union(here, err)
        if union is not None:
            return union
    return [(here, err.message)]


def _tagged_union(here: str, err: SchemaError) -> list[tuple[str, str]] | None:
    """A union failed. For a union of constants (an enum) or of objects
    tagged by `kind`, name the allowed tags, or the errors of the branch
    the message's tag chose."""
    branches: dict[int, list[SchemaError]] = {}
    for sub in err.context or []:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    tags = (here, f"{here}/kind")

    def tag_error(branch: list[SchemaError]) -> SchemaError | None:
        for e in branch:
            if e.validator == "const" and _pointer(e.absolute_path) in tags:
                return e
        return None

    if not branches:
        return None
    for index in sorted(branches):
        branch = branches[index]
        if tag_error(branch) is None:
            chosen = sorted(branch, key=_keyword_rank)
            return _violations(chosen[0])
    refused = [tag_error(branches[i]) for i in sorted(branches)]
    first = refused[0]
    assert first is not None
    expected = ", ".join(_json(e.validator_value) for e in refused if e is not None)
    return [(_pointer(first.absolute_path), f"expected one of {expected}, found {_json(first.instance)}")]


def find_non_json_number(value: Any, here: str = "") -> tuple[str, str] | None:
    """(pointer, cause) of the first number with no JSON text the fleet can
    read: a NaN or infinite float, or an integer beyond a 64-bit float."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (here, NOT_JSON_NUMBER)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return (here, OUT_OF_RANGE)
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_non_json_number(item, f"{here}/{_segment(str(key))}")
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = find_non_json_number(item, f"{here}/{i}")
            if found is not None:
                return found
    return None


def _find_nul(value: Any, here: str) -> str | None:
    """The pointer of the first string or key holding U+0000, if any."""
    if isinstance(value, str):
        return here if "\0" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            segment = str(key).replace("~", "~0").replace("/", "~1")
            if "\0" in str(key):
                return here + "/" + segment.replace("\0", "\\u0000")
            found = _find_nul(item, f"{here}/{segment}")
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_nul(item, f"{here}/{i}")
            if found is not None:
                return found
    return None


__all__ = ["check", "parse", "violations_of", "schema_of", "find_non_json_number", "MAX_LISTED_VIOLATIONS"]
