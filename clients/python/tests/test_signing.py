"""Signed cancels against a fleet that requires them
(`runfleet-test-fleet --require-signed-control`): a cancel signed by a
registered key is accepted; an unsigned one, and one signed by a key not
registered, are dead-lettered as `signature-invalid` and cancel nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from runfleet import Producer, Signer, generate_seed

from .conftest import Fleet

SLOW = {"text": "slow", "steps": 30, "step_sleep_ms": 200}


async def register(producer: Producer, tenant: str, public_key: str) -> dict[str, Any]:
    request = {"tenant": tenant, "public_key": public_key, "note": "python producer tests"}
    reply = await producer.nc.request("runfleet.api.signer.add", json.dumps(request).encode(), timeout=10)
    answer: dict[str, Any] = json.loads(reply.data)
    assert "error" not in answer, f"signer.add refused: {answer}"
    return answer


async def slow_command(producer: Producer, tenant: str) -> tuple[str, str]:
    """A run whose first command runs for ~6 s; returns once it has started."""
    run = await producer.create_run(tenant, "web", "agent")
    run_id = run.message["run_id"]
    command = await producer.send_command(tenant, run_id, 1, SLOW)
    async with contextlib.aclosing(producer.follow_events(tenant, run_id)) as events:
        async for event in events:
            if event["body"]["kind"] == "progress":
                break
    return run_id, command.message["command_id"]


async def test_a_signed_cancel_is_accepted_and_unsigned_ones_are_refused(signed_fleet: Fleet, tenant: str) -> None:
    seed = generate_seed()
    async with (
        await Producer.connect(signed_fleet.nats_url, signing_key=seed) as signed,
        await Producer.connect(signed_fleet.nats_url) as unsigned,
        await Producer.connect(signed_fleet.nats_url, signing_key=generate_seed()) as stranger,
    ):
        assert signed.signer_public_key == Signer(seed).public_key
        registration = await register(signed, tenant, Signer(seed).public_key)
        assert registration.get("public_key") == Signer(seed).public_key

        (kept_run, kept_command), (doomed_run, doomed_command) = await asyncio.wait_for(
            asyncio.gather(slow_command(unsigned, tenant), slow_command(signed, tenant)), 90
        )

        # Unsigned, and signed by a key the tenant never registered: refused.
        refused = [
            await unsigned.cancel(tenant, kept_run, kept_command, "no signature"),
            await stranger.cancel(tenant, kept_run, kept_command, "unregistered key", idempotency_key=f"cancel:{kept_run}:stranger"),
        ]
        for accepted in refused:
            letter = await unsigned.wait_for_refusal(accepted, timeout=30)
            assert letter is not None, f"no dead letter for {accepted.message}"
            assert letter["reason"] == "signature-invalid", letter
            assert letter["original_subject"] == f"runfleet.ctl.{tenant}.{kept_run}"

        # Signed by the registered key: the command is cancelled.
        accepted = await signed.cancel(tenant, doomed_run, doomed_command, "signed")
        assert "Runfleet-Signature" not in accepted.message  # headers, not body
        cancelled = await signed.wait_for_receipt(tenant, doomed_run, doomed_command, timeout=60)
        assert cancelled.status == "cancelled", cancelled.message
        assert await signed.wait_for_refusal(accepted, timeout=1) is None

        # The refused cancels cancelled nothing.
        kept = await unsigned.wait_for_receipt(tenant, kept_run, kept_command, timeout=90)
        assert kept.status == "completed", kept.message
