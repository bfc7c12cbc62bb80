"""The stream reader against the fleet's NATS server, on a stream of the
test's own: a pull stopped by its byte budget (`409 Message Size Exceeds
MaxBytes`) is pulled again on the same consumer, and a stream not found is
waited for a grace period (as right after a server restart) before it is an
error, while a refusal (400) is one at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from runfleet import ReadError
from runfleet import reader as reader_module
from runfleet.reader import StreamReader

from .conftest import Fleet

#: A result chunk's size on the wire: 196,608 bytes as base64.
CHUNK = 256 * 1024


@pytest.fixture
async def nc(fleet: Fleet) -> AsyncIterator[Client]:
    client = await nats.connect(fleet.nats_url)
    yield client
    await client.close()


def counting_creates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every consumer the readers create."""
    created: list[str] = []
    original = StreamReader._create

    async def create(self: StreamReader) -> None:
        await original(self)
        created.append(str(self._consumer))

    monkeypatch.setattr(StreamReader, "_create", create)
    return created


async def test_a_pull_stopped_by_max_bytes_is_pulled_again_on_the_same_consumer(
    nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    js = nc.jetstream()
    stream = f"PYTEST_READER_{uuid.uuid4().hex[:8].upper()}"
    subject = f"pytest.reader.{stream}"
    await js.add_stream(name=stream, subjects=[f"{subject}.>"], storage="memory")
    try:
        # 48 chunk-sized messages: 12 MiB, more than one pull's 8 MiB.
        for i in range(48):
            await js.publish(f"{subject}.x", i.to_bytes(4, "big") + bytes(CHUNK - 4))
        created = counting_creates(monkeypatch)
        got: list[int] = []
        async with StreamReader(nc, stream, f"{subject}.x") as reader:
            while len(got) < 48:
                message = await reader.next(timeout=30)
                assert message is not None, f"only {len(got)} of 48 messages within 30s"
                got.append(int.from_bytes(message.data[:4], "big"))
        assert got == list(range(48))
        assert len(created) == 1, f"the consumer was created {len(created)} times"
    finally:
        await js.delete_stream(stream)


def test_message_size_exceeds_max_bytes_ends_the_pull() -> None:
    reader = StreamReader(SimpleNamespace(max_payload=1 << 20), "S", "s.x")  # type: ignore[arg-type]
    reader._outstanding, reader._pull_delivered, reader._last_sign = 200, True, 1.0
    status: Any = SimpleNamespace(headers={"Status": "409", "Description": "Message Size Exceeds MaxBytes"})
    assert reader._take(status) is None
    assert reader._outstanding == 0, "the next turn pulls again"
    assert reader._last_sign != 0.0, "the consumer is kept"
    assert reader._max_bytes == 8 << 20
    # Not even one message fitted: the next pull asks for more.
    reader._pull_delivered = False
    reader._take(status)
    assert reader._max_bytes == 16 << 20


def test_a_pull_asks_for_more_than_max_payload() -> None:
    reader = StreamReader(SimpleNamespace(max_payload=64 << 20), "S", "s.x")  # type: ignore[arg-type]
    assert reader._max_bytes > 64 << 20


async def test_a_stream_not_found_is_waited_for(nc: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "STREAM_NOT_FOUND_GRACE", 10.0)
    js = nc.jetstream()
    stream = f"PYTEST_LATE_{uuid.uuid4().hex[:8].upper()}"
    subject = f"pytest.late.{stream}"

    async def appear() -> None:
        await asyncio.sleep(1.5)
        await js.add_stream(name=stream, subjects=[f"{subject}.>"], storage="memory")
        await js.publish(f"{subject}.x", b"here")

    appearing = asyncio.create_task(appear())
    try:
        async with StreamReader(nc, stream, f"{subject}.x") as reader:
            message = await reader.next(timeout=20)
        assert message is not None and message.data == b"here"
    finally:
        await appearing
        await js.delete_stream(stream)


async def test_a_stream_still_not_found_after_the_grace_is_a_read_error(
    nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "STREAM_NOT_FOUND_GRACE", 1.0)
    started = time.monotonic()
    with pytest.raises(ReadError, match=r"stream not found.*\(for 1s\)"):
        async with StreamReader(nc, "PYTEST_NEVER", "pytest.never.x") as reader:
            await reader.next(timeout=20)
    assert 1.0 <= time.monotonic() - started < 10


async def test_a_refused_consumer_is_a_read_error_at_once(nc: Client) -> None:
    js = nc.jetstream()
    stream = f"PYTEST_REFUSE_{uuid.uuid4().hex[:8].upper()}"
    await js.add_stream(name=stream, subjects=[f"pytest.refuse.{stream}.>"], storage="memory")
    try:
        started = time.monotonic()
        with pytest.raises(ReadError, match=r"opt_start_seq.*\(code 400\)"):
            # A start sequence the server cannot read (beyond its uint64): 400, not worth retrying.
            async with StreamReader(nc, stream, f"pytest.refuse.{stream}.x", start_seq=2**64) as reader:
                await reader.next(timeout=20)
        assert time.monotonic() - started < 5
    finally:
        await js.delete_stream(stream)
