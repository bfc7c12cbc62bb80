"""Against the real fleet: runs, commands, receipts, the message id on the
wire, duplicates, refusals, timeouts and publish retries."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from runfleet import Producer, PublishError, ReceiptTimeout, Refused, ValidationError, new_command, new_run
from runfleet.publish import publish_acked

from .conftest import Fleet


async def test_a_run_and_its_commands_get_receipts(producer: Producer, tenant: str) -> None:
    run = await producer.create_run(tenant, "web", "agent", labels={"suite": "python"})
    assert not run.duplicate and run.stream == "RUNFLEET_WORK"
    run_id = run.message["run_id"]
    first = await producer.send_command(tenant, run_id, 1, {"text": "one"})
    second = await producer.send_command(tenant, run_id, 2, {"text": "two", "steps": 2})
    receipt = await producer.wait_for_receipt(tenant, run_id, second.message["command_id"], timeout=60)
    assert receipt.status == "completed", receipt.message
    assert receipt.seq == 2
    assert await receipt.output() == {"text": "two", "steps": [{"n": 1}, {"n": 2}], "attempt": 1}
    receipt = await producer.wait_for_receipt(tenant, run_id, first.message["command_id"], timeout=60)
    assert await receipt.output() == {"text": "one", "steps": [], "attempt": 1}
    assert receipt.events is not None and receipt.events["first_seq"] >= 1


async def test_the_msg_id_and_schema_headers_travel_with_the_message(producer: Producer, tenant: str) -> None:
    # RUNFLEET_WORK is a work queue (a worker's ack deletes the message), so
    # watch the subject itself: what goes on the wire is what JetStream stores.
    watcher = await producer.nc.subscribe(f"runfleet.run.{tenant}.>")
    accepted = await producer.create_run(tenant, "web", "agent")
    seen = await watcher.next_msg(timeout=10)
    await watcher.unsubscribe()
    headers = seen.headers or {}
    key = accepted.message["idempotency_key"]
    assert seen.subject == accepted.subject == f"runfleet.run.{tenant}.{accepted.message['run_id']}"
    assert headers["Nats-Msg-Id"] == f"{key}~{hashlib.sha256(seen.data).hexdigest()[:16]}"
    assert headers["Nats-Msg-Id"] == accepted.msg_id
    assert headers["Runfleet-Schema"] == "run.create"
    assert headers["traceparent"].startswith("00-")
    assert json.loads(seen.data) == accepted.message


async def test_the_same_message_again_is_already_accepted(producer: Producer, tenant: str) -> None:
    run = new_run(tenant, "web", "agent")
    first = await producer.publish(run)
    again = await producer.publish(run)
    assert not first.duplicate
    assert again.duplicate, "the same bytes under the same Nats-Msg-Id must be answered as a duplicate"
    assert again.sequence == first.sequence
    assert again.msg_id == first.msg_id


async def test_an_invalid_message_is_not_published(producer: Producer, tenant: str) -> None:
    async def last_seq() -> int:
        reply = await producer.nc.request("$JS.API.STREAM.INFO.RUNFLEET_WORK", b"")
        return int(json.loads(reply.data)["state"]["last_seq"])

    before = await last_seq()
    with pytest.raises(ValidationError) as caught:
        await producer.send_command(tenant, "r1", 0, {"text": "hi"})
    assert str(caught.value) == "command.create: /seq: must be at least 1, found 0"
    with pytest.raises(ValidationError, match='/schema: expected one of "run.create", "command.create", "control.cancel"'):
        await producer.publish({"schema": "receipt"})
    assert await last_seq() == before


async def test_the_same_key_with_another_payload_is_refused(producer: Producer, tenant: str) -> None:
    run = await producer.create_run(tenant, "web", "agent")
    run_id = run.message["run_id"]
    first = await producer.send_command(tenant, run_id, 1, {"text": "original"})
    receipt = await producer.wait_for_receipt(tenant, run_id, first.message["command_id"], timeout=60)
    assert receipt.status == "completed"
    # The same key (cmd:<run_id>:1) with another payload, under a new command id.
    conflicting = new_command(tenant, run_id, 1, {"text": "changed"})
    assert conflicting["idempotency_key"] == first.message["idempotency_key"]
    accepted = await producer.publish(conflicting)
    assert not accepted.duplicate  # another payload: another Nats-Msg-Id
    with pytest.raises(Refused) as caught:
        await producer.wait_for_receipt(tenant, run_id, conflicting["command_id"], timeout=60)
    assert caught.value.reason == "idempotency-conflict"
    assert caught.value.dead_letter["original_subject"] == f"runfleet.cmd.{tenant}.{run_id}"
    assert "idempotency-conflict" in str(caught.value)
    # The original message is still answered by its receipt.
    again = await producer.wait_for_receipt(tenant, run_id, first.message["command_id"], timeout=30)
    assert again.status == "completed"


async def test_no_receipt_in_time_is_a_receipt_timeout(producer: Producer, tenant: str) -> None:
    started = time.monotonic()
    with pytest.raises(ReceiptTimeout, match="no receipt of command nope"):
        await producer.wait_for_receipt(tenant, "no-such-run", "nope", timeout=1.5)
    assert 1.4 <= time.monotonic() - started < 10


async def test_no_responders_is_retried_with_the_same_bytes_then_given_up(producer: Producer) -> None:
    # No stream listens here: every attempt is answered 503 no responders.
    started = time.monotonic()
    with pytest.raises(PublishError, match="no responders.*gave up after [3-9]\\d* attempt"):
        await publish_acked(producer.nc, "runfleet-python-test.nowhere", b"{}", {"Nats-Msg-Id": "x"}, retry_for=1.0)
    # 0.1 + 0.2 + 0.4 s of delays; the next (0.8 s) would pass the 1 s budget.
    assert 0.6 <= time.monotonic() - started < 5


async def test_a_command_published_while_nats_restarts_is_retried_until_stored(fleet: Fleet, tenant: str) -> None:
    import asyncio

    async with await Producer.connect(fleet.nats_url) as producer:
        run = await producer.create_run(tenant, "web", "agent")
        run_id = run.message["run_id"]
        restart = asyncio.create_task(asyncio.to_thread(fleet.command, "restart-nats"))
        await asyncio.sleep(0.05)
        command = await producer.send_command(tenant, run_id, 1, {"text": "through a restart"})
        assert (await restart)["restarted"]
        receipt = await producer.wait_for_receipt(tenant, run_id, command.message["command_id"], timeout=90)
        assert receipt.status == "completed"


async def test_a_tenant_inbox_prefix_carries_every_answer(fleet: Fleet, tenant: str) -> None:
    # A confined tenant may only receive on _INBOX_<tenant>: PubAcks, consumer
    # creation and pulled messages must all come back there.
    async with await Producer.connect(fleet.nats_url, inbox_prefix=f"_INBOX_{tenant}") as producer:
        assert producer.nc.new_inbox().startswith(f"_INBOX_{tenant}.")
        run = await producer.create_run(tenant, "web", "agent")
        run_id = run.message["run_id"]
        command = await producer.send_command(tenant, run_id, 1, {"text": "confined"})
        receipt = await producer.wait_for_receipt(tenant, run_id, command.message["command_id"], timeout=60)
        assert await receipt.output() == {"text": "confined", "steps": [], "attempt": 1}
