"""Putting a large result back together from its `result_chunk` events.

A result whose JSON text is over 64 KiB reaches the producer as a receipt
with `output_chunks` {count, bytes, digest} and `count` `result_chunk`
events of the command, inside the receipt's `events` range. Reassembly
(schemas/README.md, "Result chunks"): collect those events from the events
stream, base64-decode each, join them by `index`, check the length and the
SHA-256, decode UTF-8, parse JSON. Every failure is an `OutputError` naming
the cause.

The receipt's `output_chunks` is checked before anything is collected for
it: `bytes` at most 64 MiB (`MAX_CHUNKED_BYTES`, the most a result holds)
and `count` the number of 196,608-byte pieces (`CHUNK_BYTES`) those bytes
make, at least one — a receipt claiming a million chunks is refused rather
than waited for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client

from .errors import OutputError
from .messages import EVENT_STREAM, event_subject
from .reader import StreamReader

#: The largest result that travels as chunks (a larger one is truncated instead).
MAX_CHUNKED_BYTES = 64 * 1024 * 1024
#: Bytes of the result's JSON text in every chunk but the last.
CHUNK_BYTES = 192 * 1024

#: Once the reader has caught up with the stream, how long missing chunks are
#: still waited for (a publish retried across a failover lands late).
CAUGHT_UP_GRACE = 15.0


async def reassemble(nc: Client, receipt: Mapping[str, Any], timeout: float) -> Any:
    """The result value of a receipt carrying `output_chunks`."""
    spec = receipt.get("output_chunks") or {}
    what = f"receipt of command {receipt.get('command_id')}"
    if not isinstance(spec, Mapping):
        raise OutputError(f"{what}: malformed output_chunks {spec!r}")
    count, total, digest = spec.get("count"), spec.get("bytes"), spec.get("digest")
    whole = not isinstance(count, bool) and not isinstance(total, bool)
    if not (whole and isinstance(count, int) and isinstance(total, int) and isinstance(digest, str)):
        raise OutputError(f"{what}: malformed output_chunks {spec!r}")
    check_output_chunks(count, total, what)
    span = receipt.get("events") or {}
    if "first_seq" not in span or "last_seq" not in span:
        raise OutputError(f"{what}: output_chunks without an events range")
    chunks = await _collect(nc, receipt, count, digest, int(span["first_seq"]), int(span["last_seq"]), timeout)
    return decode(chunks, count, total, digest)


def check_output_chunks(count: int, total: int, what: str = "the result") -> None:
    """Raises `OutputError` unless `total` (`output_chunks.bytes`) is 0 to
    64 MiB and `count` is `max(1, ceil(total / 196608))`."""
    if not 0 <= total <= MAX_CHUNKED_BYTES:
        raise OutputError(
            f"{what}: output_chunks.bytes is {total}; a chunked result holds 0 to {MAX_CHUNKED_BYTES} bytes"
        )
    expected = max(1, -(-total // CHUNK_BYTES))
    if count != expected:
        raise OutputError(
            f"{what}: output_chunks.count is {count}, but {total} bytes make {expected} chunk(s) of {CHUNK_BYTES} bytes"
        )


def decode(chunks: Mapping[int, bytes], count: int, total: int, digest: str) -> Any:
    """Joins decoded chunks 0..count-1 and checks them against the receipt."""
    missing = [i for i in range(count) if i not in chunks]
    if missing:
        raise OutputError(f"result chunk(s) {_ranges(missing)} of {count} missing")
    data = b"".join(chunks[i] for i in range(count))
    if len(data) != total:
        raise OutputError(f"result chunks hold {len(data)} bytes; the receipt says {total}")
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise OutputError(f"result digest mismatch: the chunks hash to {actual}; the receipt says {digest}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise OutputError(f"the result is not UTF-8: {err}") from None
    except ValueError as err:
        raise OutputError(f"the result is not JSON: {err}") from None


async def _collect(
    nc: Client, receipt: Mapping[str, Any], count: int, digest: str, first: int, last: int, timeout: float
) -> dict[int, bytes]:
    command_id = receipt.get("command_id")
    chunks: dict[int, bytes] = {}
    deadline = time.monotonic() + timeout
    caught_up: float | None = None
    reader = StreamReader(nc, EVENT_STREAM, event_subject(str(receipt["tenant"]), str(receipt["run_id"])))
    try:
        while len(chunks) < count:
            end = deadline if caught_up is None else min(deadline, caught_up + CAUGHT_UP_GRACE)
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            stored = await reader.next(remaining)
            if stored is None:
                continue
            if stored.pending == 0 and caught_up is None:
                caught_up = time.monotonic()
            try:
                event = json.loads(stored.data)
            except ValueError:
                continue
            body = event.get("body") if isinstance(event, dict) else None
            seq = event.get("seq") if isinstance(event, dict) else None
            if (
                not isinstance(body, dict)
                or body.get("kind") != "result_chunk"
                or event.get("command_id") != command_id
                or not isinstance(seq, int)
                or not first <= seq <= last
            ):
                continue
            index = body.get("index")
            if body.get("count") != count or body.get("digest") != digest or not isinstance(index, int):
                raise OutputError(
                    f"result chunk at seq {seq} disagrees with the receipt "
                    f"(index {index!r}, count {body.get('count')!r} vs {count}, digest {body.get('digest')!r})"
                )
            if not 0 <= index < count:
                raise OutputError(f"result chunk at seq {seq} has index {index}, outside 0..{count - 1}")
            if index not in chunks:
                try:
                    chunks[index] = base64.b64decode(str(body.get("data", "")), validate=True)
                except (binascii.Error, ValueError) as err:
                    raise OutputError(f"result chunk {index} (seq {seq}) is not base64: {err}") from None
    finally:
        await reader.close()
    return chunks


def _ranges(indexes: list[int]) -> str:
    """`[0, 1, 2, 5]` → `0-2, 5`."""
    spans: list[list[int]] = []
    for i in indexes:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
