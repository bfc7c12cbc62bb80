"""Waiting for the fleet's answer to a message: a receipt, or a dead letter.

A receipt answers a command id; one whose `seq` or `idempotency_key`
differs from the message sent belongs to another message that used the
same id, and is not this one's answer. A message the fleet refused without
a receipt of its own (an idempotency conflict, an invalid message, an
unsigned cancel) is found on the tenant's dead-letter subject, by its
subject and its bytes' meaning (schemas/README.md, "Idempotency keys"), as
the Rust producer's `wait_for_answer` does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as _dt
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.client import Client

from .errors import Refused
from .messages import DEAD_LETTER_STREAM, RECEIPT_STREAM, dead_letter_subject, receipt_subject, subject_of
from .models import DeadLetter
from .reader import StreamReader

#: How far back from the start of a wait a dead letter counts.
DEAD_LETTER_LOOKBACK = 30.0
#: How long a receipt may follow its command's dead letter (it is then the answer).
RECEIPT_AFTER_DEAD_LETTER = 2.0


def original_value(letter: Mapping[str, Any]) -> Any:
    """The dead letter's original message, parsed (None when it is not JSON)."""
    payload = str(letter.get("payload", ""))
    try:
        data = base64.b64decode(payload, validate=True) if letter.get("payload_encoding") == "base64" else payload
        return json.loads(data)
    except (binascii.Error, ValueError):
        return None


def refuses(letter: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Whether `letter` refused exactly the message `sent`."""
    return letter.get("original_subject") == subject_of(sent) and original_value(letter) == dict(sent)


async def first_match(
    nc: Client,
    stream: str,
    subject: str,
    match: Callable[[Any], bool],
    *,
    start_time: _dt.datetime | None = None,
) -> Any:
    """The first message on `subject` (from the start, or `start_time`) that `match`es."""
    async with StreamReader(nc, stream, subject, start_time=start_time) as reader:
        async for stored in reader:
            try:
                value = json.loads(stored.data)
            except ValueError:
                continue
            if match(value):
                return value
    return None  # pragma: no cover - the reader only ends when closed


def _receipt_matcher(command_id: str, sent: Mapping[str, Any] | None) -> Callable[[Any], bool]:
    def match(receipt: Any) -> bool:
        if not isinstance(receipt, dict) or receipt.get("command_id") != command_id:
            return False
        if sent is None:
            return True
        return receipt.get("seq") == sent.get("seq") and receipt.get("idempotency_key") == sent.get("idempotency_key")

    return match


def _letter_matcher(tenant: str, run_id: str, command_id: str, sent: Mapping[str, Any] | None) -> Callable[[Any], bool]:
    def match(letter: Any) -> bool:
        if not isinstance(letter, dict):
            return False
        if sent is not None:
            return refuses(letter, sent)
        # Without the message sent: a refused command.create of this id.
        original = original_value(letter)
        return (
            str(letter.get("original_subject", "")).startswith(f"runfleet.cmd.{tenant}.{run_id}")
            and isinstance(original, dict)
            and original.get("command_id") == command_id
        )

    return match


async def wait_for_answer(
    nc: Client,
    tenant: str,
    run_id: str,
    command_id: str,
    timeout: float,
    sent: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The receipt of the command; raises `Refused` for its dead letter; None on timeout."""
    since = _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=DEAD_LETTER_LOOKBACK)
    receipt = asyncio.ensure_future(
        first_match(nc, RECEIPT_STREAM, receipt_subject(tenant, run_id), _receipt_matcher(command_id, sent))
    )
    refusal = asyncio.ensure_future(
        first_match(
            nc,
            DEAD_LETTER_STREAM,
            dead_letter_subject(tenant),
            _letter_matcher(tenant, run_id, command_id, sent),
            start_time=since,
        )
    )
    deadline = time.monotonic() + timeout
    try:
        done, _ = await asyncio.wait({receipt, refusal}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if receipt in done:
            found: dict[str, Any] = receipt.result()
            return found
        if refusal in done:
            letter = refusal.result()
            # Some outcomes are a dead letter *and* a receipt, the letter first:
            # when the receipt follows, it is the answer.
            wait = max(0.0, min(RECEIPT_AFTER_DEAD_LETTER, deadline - time.monotonic()))
            done, _ = await asyncio.wait({receipt}, timeout=wait)
            if receipt in done:
                found = receipt.result()
                return found
            raise Refused(str(letter.get("reason")), str(letter.get("message")), letter)
        return None
    finally:
        await _cancel(receipt, refusal)


async def wait_for_refusal(nc: Client, sent: Mapping[str, Any], timeout: float, since: _dt.datetime) -> DeadLetter | None:
    """The dead letter refusing exactly `sent`, if one arrives within `timeout`."""
    task = asyncio.ensure_future(
        first_match(
            nc,
            DEAD_LETTER_STREAM,
            dead_letter_subject(str(sent["tenant"])),
            lambda letter: isinstance(letter, dict) and refuses(letter, sent),
            start_time=since - _dt.timedelta(seconds=DEAD_LETTER_LOOKBACK),
        )
    )
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task in done:
            letter: DeadLetter = task.result()
            return letter
        return None
    finally:
        await _cancel(task)


async def _cancel(*tasks: Awaitable[Any]) -> None:
    for task in tasks:
        fut = asyncio.ensure_future(task)
        if not fut.done():
            fut.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await fut
