"""A 20 MiB result through the process backend (`big` profile): the receipt
carries `output_chunks`, and `receipt.output()` puts the value back together."""

from __future__ import annotations

import time

from runfleet import Producer

from .conftest import Fleet, expected_blob

TWENTY_MIB = 20 * 1024 * 1024


def worker_trouble(fleet: Fleet) -> str:
    """The workers' warnings and errors, to say why a command did not complete."""
    logs = fleet.command("worker-logs").get("logs", [])
    lines = [line for log in logs for line in str(log).splitlines() if " WARN " in line or " ERROR " in line]
    return "\n".join(lines[-20:])


async def test_a_20_mib_result_is_reassembled_from_chunks(fleet: Fleet, producer: Producer, tenant: str) -> None:
    run = await producer.create_run(tenant, "web", "big")
    run_id = run.message["run_id"]
    command = await producer.send_command(tenant, run_id, 1, {"bytes": TWENTY_MIB})
    receipt = await producer.wait_for_receipt(tenant, run_id, command.message["command_id"], timeout=180)
    if receipt.status != "completed":
        raise AssertionError(f"the 20 MiB command ended {receipt.status}: {receipt.failure}\n{worker_trouble(fleet)}")
    assert "output" not in receipt.message, "a 20 MiB result must not be inline"
    chunks = receipt.output_chunks
    assert chunks is not None, f"no output_chunks in the receipt: {receipt.message}"
    assert chunks["count"] >= TWENTY_MIB // 196_608
    assert chunks["digest"].startswith("sha256:")
    started = time.monotonic()
    value = await receipt.output(timeout=120)
    assert set(value) == {"blob", "tail"}
    assert len(value["blob"]) == TWENTY_MIB
    assert value["blob"] == expected_blob(TWENTY_MIB)
    assert value["tail"] == "fin ✓ é"
    assert time.monotonic() - started < 120


async def test_a_small_result_stays_in_the_receipt(producer: Producer, tenant: str) -> None:
    run = await producer.create_run(tenant, "web", "big")
    run_id = run.message["run_id"]
    command = await producer.send_command(tenant, run_id, 1, {"bytes": 1000})
    receipt = await producer.wait_for_receipt(tenant, run_id, command.message["command_id"], timeout=60)
    assert receipt.status == "completed"
    assert receipt.output_chunks is None
    assert await receipt.output() == {"blob": expected_blob(1000), "tail": "fin ✓ é"}
