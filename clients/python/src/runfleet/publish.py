"""Acknowledged publishes: PubAck awaited, transient failures retried with the same bytes.

A publish JetStream could not answer — `503 no responders` (a stream
electing a leader), no PubAck in time (it may have been stored: JetStream
drops the retry as a duplicate), a connection being re-established — is
sent again with the *same bytes and the same `Nats-Msg-Id`* after 100 ms,
doubling to 2 s, until `retry_for` seconds have passed (30 by default).
Giving up on a command leaves a gap in its run's seqs, so the retry is
generous. A PubAck with `"duplicate": true` is success: the message had
already been accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client

from .errors import PublishError

log = logging.getLogger("runfleet.publish")

#: How long a publish is retried by default while JetStream cannot answer.
DEFAULT_PUBLISH_RETRY = 30.0
#: How long one attempt waits for its PubAck.
ACK_TIMEOUT = 5.0
FIRST_DELAY = 0.1
MAX_DELAY = 2.0


@dataclass(frozen=True)
class Accepted:
    """JetStream stored the message (or had stored it before)."""

    #: The message as published.
    message: Any
    #: The subject it was published on.
    subject: str
    #: Its `Nats-Msg-Id`.
    msg_id: str
    #: The stream that stored it.
    stream: str
    #: Its sequence in that stream (the original's, for a duplicate).
    sequence: int
    #: True when the same `Nats-Msg-Id` was accepted before: nothing new was stored.
    duplicate: bool


def new_traceparent() -> str:
    """A fresh W3C trace context (`00-<trace id>-<span id>-01`, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


_TRANSIENT = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    asyncio.TimeoutError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.UnexpectedEOF,
)


async def publish_acked(
    nc: Client,
    subject: str,
    payload: bytes,
    headers: dict[str, str],
    retry_for: float = DEFAULT_PUBLISH_RETRY,
    ack_timeout: float = ACK_TIMEOUT,
) -> dict[str, Any]:
    """Publishes and returns JetStream's PubAck (`{"stream", "seq", "duplicate"?}`)."""
    deadline = time.monotonic() + retry_for
    delay = FIRST_DELAY
    attempts = 0
    while True:
        attempts += 1
        try:
            reply = await nc.request(subject, payload, timeout=ack_timeout, headers=headers)
            ack = _parse_ack(subject, reply.data)
            if ack is not None:
                return ack
            cause = "503: JetStream temporarily unavailable"
        except nats.errors.NoRespondersError:
            cause = "503 no responders (no stream for the subject, or it has no leader yet)"
        except _TRANSIENT as err:
            cause = f"no PubAck within {ack_timeout:g}s ({type(err).__name__})"
        except nats.errors.ConnectionClosedError:
            raise PublishError(subject, "the connection is closed") from None
        if retry_for <= 0 or time.monotonic() + delay > deadline:
            raise PublishError(subject, f"{cause}; gave up after {attempts} attempt(s) in {retry_for:g}s")
        log.debug("publish on %s not answered (%s); retrying in %.1fs with the same message id", subject, cause, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


def _parse_ack(subject: str, data: bytes) -> dict[str, Any] | None:
    """The PubAck; None for a transient JetStream error; raises for another error."""
    try:
        ack = json.loads(data)
    except ValueError:
        raise PublishError(subject, f"the PubAck is not JSON: {data[:200]!r}") from None
    if not isinstance(ack, dict):
        raise PublishError(subject, f"the PubAck is not an object: {data[:200]!r}")
    error = ack.get("error")
    if error:
        if isinstance(error, dict) and error.get("code") == 503:
            return None
        description = error.get("description", error) if isinstance(error, dict) else error
        raise PublishError(subject, f"{description} — has `runfleet-worker setup` created the streams?")
    if "stream" not in ack or "seq" not in ack:
        raise PublishError(subject, f"unexpected PubAck: {data[:200]!r}")
    return ack
