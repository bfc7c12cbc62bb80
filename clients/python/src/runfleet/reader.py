"""Reading one subject of a JetStream stream, in stream order, across reconnects.

`StreamReader` is an "ordered consumer" built on a pull consumer: an
ephemeral consumer (memory storage, ack policy none, filtered to the
subject) created by name on the stream, so that the create request's
subject (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`) is what NATS
permissions can confine to a tenant; replies come into the connection's
inbox prefix (`_INBOX_<tenant>` for a confined tenant).

Whatever goes wrong — the server restarted and forgot the consumer, a pull
answer was lost in a disconnect (the consumer sequence jumps), no heartbeat
for a while — the reader drops the consumer and creates a new one starting
right after the last stream sequence it delivered. Nothing is skipped and
nothing delivered twice, from the reader's point of view.

A pull ends — and the next one is sent on the same consumer — when it
expires (408), finds nothing (404), or stops at its byte budget (`409
Message Size Exceeds MaxBytes`: the next message would not fit in what is
left of it; result chunks are 256 KiB each). A pull asks for at least 8 MiB
and for more than the server's `max_payload`, so any one message fits in
an empty pull. A stream not found (404) right after a server restart is
waited for `STREAM_NOT_FOUND_GRACE` seconds before it is a `ReadError`; a
refusal (400, 403) is one at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .errors import ReadError

log = logging.getLogger("runfleet.reader")

#: The pull request's expiry and heartbeat; no sign of life for `_WATCHDOG` resets.
_EXPIRES = 10.0
_HEARTBEAT = 2.0
_WATCHDOG = 2 * _HEARTBEAT + 1.0
#: Messages and bytes asked for per pull (bytes: at least this, and more than `max_payload`).
_BATCH = 256
_MAX_BYTES = 8 << 20
#: What the server counts in a message's size besides its payload and headers
#: (subject, reply subject): its `max_payload` plus this always fits in a pull.
_SIZE_OVERHEAD = 64 << 10
#: How long "stream not found" is waited out (a restarted server recovering
#: its streams) before it is a `ReadError`.
STREAM_NOT_FOUND_GRACE = 10.0


class _StreamNotFound(Exception):
    """The consumer's stream does not exist (yet, or any more)."""


@dataclass(frozen=True)
class StoredMessage:
    """One message as the stream holds it."""

    subject: str
    data: bytes
    headers: dict[str, str]
    #: Its sequence in the stream.
    stream_seq: int
    #: Messages of the subject after it, when it was delivered (0: caught up).
    pending: int


class StreamReader:
    """The messages on `subject` in `stream`, from a start point, then live.

    Start at the beginning (default), at `start_seq` (a stream sequence), or
    at `start_time` (a timezone-aware datetime). Use `await reader.next(timeout)`
    or `async for`; `await reader.close()` when done (also `async with`).
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        subject: str,
        *,
        start_seq: int | None = None,
        start_time: _dt.datetime | None = None,
    ) -> None:
        self._nc = nc
        self._stream = stream
        self._subject = subject
        self._start_seq = start_seq
        self._start_time = start_time
        self._last_stream_seq: int | None = None
        self._consumer: str | None = None
        self._sub: Subscription | None = None
        self._inbox = ""
        self._consumer_seq = 0
        self._outstanding = 0
        self._last_sign = 0.0
        self._closed = False
        self._max_bytes = max(_MAX_BYTES, (nc.max_payload or 0) + _SIZE_OVERHEAD)
        #: Whether the current pull has delivered a message.
        self._pull_delivered = False
        #: Since when (monotonic) the stream has been "not found"; None while it is there.
        self._not_found_since: float | None = None

    async def __aenter__(self) -> StreamReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> StreamReader:
        return self

    async def __anext__(self) -> StoredMessage:
        message = await self.next()
        if message is None:
            raise StopAsyncIteration
        return message

    async def next(self, timeout: float | None = None) -> StoredMessage | None:
        """The next message; `None` when `timeout` (seconds) passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            if self._sub is None:
                if not await self._reset(deadline):
                    return None
                continue
            if self._outstanding <= 0:
                await self._pull()
            wait = _WATCHDOG - (time.monotonic() - self._last_sign)
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                log.debug("no heartbeat on %s; creating the consumer again", self._subject)
                await self._drop()
                continue
            try:
                msg = await self._sub.next_msg(timeout=wait)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except nats.errors.Error as err:  # connection closed, slow consumer, …
                if self._nc.is_closed:
                    raise ReadError(f"cannot read {self._subject}: the connection is closed") from err
                await self._drop()
                continue
            stored = self._take(msg)
            if stored is not None:
                return stored
        return None

    async def close(self) -> None:
        """Stops reading and deletes the consumer (best effort)."""
        self._closed = True
        await self._drop()

    # -- internals -----------------------------------------------------------

    def _take(self, msg: Msg) -> StoredMessage | None:
        """A data message to deliver, or None after handling a status."""
        self._last_sign = time.monotonic()
        status = (msg.headers or {}).get("Status")
        if status:
            if status == "100":  # idle heartbeat
                return None
            if status in ("404", "408"):  # no messages / request expired
                self._outstanding = 0
                return None
            description = (msg.headers or {}).get("Description", "")
            if status == "409" and "message size exceeds maxbytes" in description.lower():
                # The pull's byte budget is spent: pull again on the same consumer.
                if not self._pull_delivered:
                    # Not even one message fitted (a server with a larger max_payload
                    # than it announced?): ask for more, or it would never come.
                    self._max_bytes *= 2
                    log.debug("pull on %s: a message exceeds %d bytes; asking for more", self._subject, self._max_bytes)
                self._outstanding = 0
                return None
            if status == "409" and ("Exceeded Max" in description or "Batch Completed" in description):
                self._outstanding = 0
                return None
            # 409 consumer deleted / leadership change, 503 no responders: start over.
            log.debug("pull on %s answered %s %s; creating the consumer again", self._subject, status, description)
            self._sub_to_drop()
            return None
        try:
            meta = msg.metadata
        except Exception:
            return None  # not a JetStream delivery: not ours
        if meta.sequence.consumer != self._consumer_seq + 1:
            log.debug("consumer sequence jumped on %s; creating the consumer again", self._subject)
            self._sub_to_drop()
            return None
        self._consumer_seq = meta.sequence.consumer
        self._last_stream_seq = meta.sequence.stream
        self._outstanding -= 1
        self._pull_delivered = True
        headers = {k: v for k, v in (msg.headers or {}).items()}
        return StoredMessage(msg.subject, msg.data, headers, meta.sequence.stream, meta.num_pending)

    def _sub_to_drop(self) -> None:
        """Marks the consumer for replacement at the next turn of `next`."""
        self._last_sign = 0.0
        self._outstanding = 1  # no new pull on the doomed consumer

    async def _pull(self) -> None:
        request = {
            "batch": _BATCH,
            "max_bytes": self._max_bytes,
            "expires": int(_EXPIRES * 1e9),
            "idle_heartbeat": int(_HEARTBEAT * 1e9),
        }
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}"
        with contextlib.suppress(nats.errors.Error):
            await self._nc.publish(subject, json.dumps(request).encode(), reply=self._inbox)
        self._outstanding = _BATCH
        self._pull_delivered = False
        self._last_sign = time.monotonic()

    async def _drop(self) -> None:
        sub, consumer = self._sub, self._consumer
        self._sub, self._consumer = None, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if consumer is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.publish(f"$JS.API.CONSUMER.DELETE.{self._stream}.{consumer}", b"")

    async def _reset(self, deadline: float | None) -> bool:
        """Creates a consumer from where the last one left off; False on timeout."""
        delay = 0.1
        while not self._closed:
            try:
                await self._create()
                self._not_found_since = None
                return True
            except ReadError:
                raise
            except _StreamNotFound as err:  # a restarted server recovering its streams, or no stream
                now = time.monotonic()
                if self._not_found_since is None:
                    self._not_found_since = now
                if now - self._not_found_since >= STREAM_NOT_FOUND_GRACE:
                    raise ReadError(
                        f"cannot create a consumer on {self._subject} in {self._stream}: {err}"
                        f" (for {STREAM_NOT_FOUND_GRACE:g}s)"
                    ) from None
                log.debug("stream %s not found yet; trying again", self._stream)
            except Exception as err:  # server away, request timed out, JetStream busy
                log.debug("cannot create a consumer on %s yet: %s", self._subject, err)
            if self._nc.is_closed:
                raise ReadError(f"cannot read {self._subject}: the connection is closed")
            if deadline is not None and time.monotonic() + delay >= deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return False

    async def _create(self) -> None:
        name = f"runfleet-reader-{uuid.uuid4().hex}"
        config: dict[str, Any] = {
            "name": name,
            "filter_subject": self._subject,
            "ack_policy": "none",
            "mem_storage": True,
            "num_replicas": 1,
            "inactive_threshold": int(30e9),
            "max_waiting": 4,
        }
        if self._last_stream_seq is not None:
            config.update(deliver_policy="by_start_sequence", opt_start_seq=self._last_stream_seq + 1)
        elif self._start_seq is not None:
            config.update(deliver_policy="by_start_sequence", opt_start_seq=max(1, self._start_seq))
        elif self._start_time is not None:
            start = self._start_time.astimezone(_dt.UTC).isoformat().replace("+00:00", "Z")
            config.update(deliver_policy="by_start_time", opt_start_time=start)
        else:
            config.update(deliver_policy="all")
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, pending_msgs_limit=-1, pending_bytes_limit=-1)
        try:
            subject = f"$JS.API.CONSUMER.CREATE.{self._stream}.{name}.{self._subject}"
            body = json.dumps({"stream_name": self._stream, "config": config}).encode()
            reply = await self._nc.request(subject, body, timeout=5.0)
            answer = json.loads(reply.data)
            if "error" in answer:
                error = answer["error"]
                code = error.get("code")
                text = f"{error.get('description', error)} (code {code})"
                if code in (400, 403):
                    raise ReadError(f"cannot create a consumer on {self._subject} in {self._stream}: {text}")
                if code == 404 and error.get("err_code") != 10008:
                    raise _StreamNotFound(text)
                raise RuntimeError(text)
        except BaseException:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            raise
        self._sub, self._inbox, self._consumer = sub, inbox, name
        self._consumer_seq = 0
        self._outstanding = 0
        self._last_sign = time.monotonic()
