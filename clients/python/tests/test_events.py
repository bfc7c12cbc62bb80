"""Following a run's events: in seq order, each once, from any seq, and
across a NATS server restart (the fixture's `restart-nats`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
from typing import Any

from runfleet import Producer

from .conftest import Fleet


async def collect_until_terminal(producer: Producer, tenant: str, run_id: str, terminals: int, from_seq: int = 1) -> list[Any]:
    """Follows the run until `terminals` terminal_status events have been read."""
    events: list[Any] = []
    async with contextlib.aclosing(producer.follow_events(tenant, run_id, from_seq)) as follow:
        async for event in follow:
            events.append(event)
            if sum(e["body"]["kind"] == "terminal_status" for e in events) == terminals:
                break
    return events


async def test_events_come_in_seq_order_each_once(producer: Producer, tenant: str) -> None:
    run = await producer.create_run(tenant, "web", "agent")
    run_id = run.message["run_id"]
    await producer.send_command(tenant, run_id, 1, {"text": "a", "steps": 2})
    await producer.send_command(tenant, run_id, 2, {"text": "b"})
    events = await asyncio.wait_for(collect_until_terminal(producer, tenant, run_id, 2), 90)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    kinds = [e["body"]["kind"] for e in events]
    assert kinds.count("progress") == 2 and kinds[-1] == "terminal_status"
    texts = [e["body"]["text"] for e in events if e["body"]["kind"] == "assistant_message"]
    assert texts == ["a", "b"]

    # From a later seq: only what follows it.
    later = await asyncio.wait_for(collect_until_terminal(producer, tenant, run_id, 1, from_seq=seqs[-3]), 30)
    assert [e["seq"] for e in later] == seqs[-3:]


async def test_following_survives_a_nats_restart(fleet: Fleet, tenant: str) -> None:
    async with await Producer.connect(fleet.nats_url) as producer:
        run = await producer.create_run(tenant, "web", "agent")
        run_id = run.message["run_id"]
        command = await producer.send_command(tenant, run_id, 1, {"text": "slow", "steps": 30, "step_sleep_ms": 200})
        events: list[Any] = []
        restarted_at: _dt.datetime | None = None
        async with contextlib.aclosing(producer.follow_events(tenant, run_id)) as follow:
            async for event in follow:
                events.append(event)
                if restarted_at is None and event["body"]["kind"] == "progress" and event["body"]["done"] >= 3:
                    answer = await asyncio.to_thread(fleet.command, "restart-nats")
                    assert answer.get("restarted"), answer
                    restarted_at = _dt.datetime.now(_dt.UTC)
                if event["body"]["kind"] == "terminal_status":
                    break
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), f"not every seq once, in order: {seqs}"
        assert restarted_at is not None
        after = [e for e in events if _dt.datetime.fromisoformat(e["at"]) > restarted_at]
        assert len(after) >= 5, f"only {len(after)} events emitted after the restart were read"
        done = [e["body"]["done"] for e in events if e["body"]["kind"] == "progress"]
        assert done == list(range(1, 31))
        receipt = await producer.wait_for_receipt(tenant, run_id, command.message["command_id"], timeout=60)
        assert receipt.status == "completed"
        assert receipt.events == {"first_seq": receipt.events["first_seq"], "last_seq": seqs[-1]}  # type: ignore[index]
