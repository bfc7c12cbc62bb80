"""The parts that need no fleet: the message id, signatures, seq ordering,
chunk verification, and errors raised before any connection."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import nacl.signing
import nkeys
import pytest

from runfleet import ConnectError, OutputError, Producer, Signer, SigningError, generate_seed, msg_id
from runfleet.chunks import check_output_chunks, decode, reassemble
from runfleet.in_seq_order import in_seq_order
from runfleet.messages import encode, new_command, subject_of


def test_msg_id_is_the_key_and_16_hex_of_the_payload_sha256() -> None:
    # The same vector as the Rust `producer_msg_id` doc test.
    assert msg_id("cmd:r1:1", b"{}") == "cmd:r1:1~44136fa355b3678a"
    payload = encode(new_command("acme", "r1", 1, {"text": "é ✓"}))
    assert msg_id("k", payload) == "k~" + hashlib.sha256(payload).hexdigest()[:16]
    assert msg_id("k", payload) != msg_id("k", payload + b" ")


def test_subjects_carry_the_priority() -> None:
    assert subject_of(new_command("acme", "r1", 1, {})) == "runfleet.cmd.acme.r1"
    assert subject_of(new_command("acme", "r1", 1, {}, priority="high")) == "runfleet.cmd.acme.r1.high"
    assert subject_of(new_command("acme", "r1", 1, {}, priority="normal")) == "runfleet.cmd.acme.r1"


def test_a_signature_verifies_over_the_documented_bytes() -> None:
    seed = generate_seed()
    assert seed.startswith("SU")
    signer = Signer(seed)
    assert signer.public_key.startswith("U") and len(signer.public_key) == 56
    body = b'{"schema":"control.cancel"}'
    headers = signer.headers("runfleet.ctl.acme.r1", body, signed_at_ms=1_700_000_000_123)
    assert headers["Runfleet-Signer"] == signer.public_key
    assert headers["Runfleet-Signed-At"] == "1700000000123"
    signature = headers["Runfleet-Signature"]
    assert "=" not in signature and "+" not in signature and "/" not in signature
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert len(raw) == 64
    signed = b"runfleet-control-v1\nrunfleet.ctl.acme.r1\n1700000000123\n" + body
    public = nkeys.from_seed(bytearray(seed.encode()))._keys.verify_key
    public.verify(signed, raw)  # raises when it does not verify
    with pytest.raises(nacl.exceptions.BadSignatureError):
        public.verify(signed + b" ", raw)


@pytest.mark.parametrize(
    ("seed", "cause"),
    [
        ("not a seed", "not an NKey seed"),
        ("SAAG4O2GFRBXV2PSOR4I4C3YZ6XZKHJNLW7P2TCIQETWIOYKQBFCTXGTHA", "another role"),
        ("SUAG4O2GFRBXV2PSOR4I4C3YZ6XZKHJNLW7P3TCIQETWIOYKQBFCTXGTHA", "checksum"),
        ("SUAG4O2G", "36 bytes"),
    ],
)
async def test_a_bad_seed_is_refused_before_connecting(seed: str, cause: str) -> None:
    with pytest.raises(SigningError, match=cause) as caught:
        # No server there: the seed is checked first.
        await Producer.connect("nats://127.0.0.1:1", signing_key=seed)
    assert seed not in str(caught.value)  # never the secret itself


async def test_an_unreachable_server_is_a_connect_error() -> None:
    with pytest.raises(ConnectError, match="cannot reach NATS at nats://127.0.0.1:1"):
        await asyncio.wait_for(Producer.connect("nats://127.0.0.1:1", connect_timeout=1), 30)


def chunked(value: Any, size: int = 7) -> tuple[dict[int, bytes], int, str]:
    data = json.dumps(value, ensure_ascii=False).encode()
    pieces = {i: data[i * size : (i + 1) * size] for i in range((len(data) + size - 1) // size)}
    return pieces, len(data), "sha256:" + hashlib.sha256(data).hexdigest()


def test_chunks_join_and_verify() -> None:
    value = {"blob": "0123456789abcdef" * 5, "tail": "fin ✓ é"}
    pieces, total, digest = chunked(value)
    assert decode(pieces, len(pieces), total, digest) == value


def test_chunk_errors_name_the_cause() -> None:
    pieces, total, digest = chunked({"blob": "x" * 40})
    count = len(pieces)
    missing = {i: p for i, p in pieces.items() if i not in (1, 2, 4)}
    with pytest.raises(OutputError, match=r"result chunk\(s\) 1-2, 4 of \d+ missing"):
        decode(missing, count, total, digest)
    with pytest.raises(OutputError, match="bytes; the receipt says"):
        decode(pieces, count, total + 1, digest)
    corrupt = dict(pieces) | {0: b"{" + pieces[0][1:].upper()}
    with pytest.raises(OutputError, match="digest mismatch"):
        decode(corrupt, count, total, digest)


@pytest.mark.parametrize(
    ("count", "size"),
    [(1, 0), (1, 70_000), (1, 196_608), (2, 196_609), (107, 20 * 1024 * 1024), (342, 64 * 1024 * 1024)],
)
def test_output_chunks_agree_with_their_size(count: int, size: int) -> None:
    check_output_chunks(count, size)


def receipt_claiming(count: object, size: object) -> dict[str, Any]:
    return {
        "command_id": "c1",
        "tenant": "acme",
        "run_id": "r1",
        "events": {"first_seq": 1, "last_seq": 3},
        "output_chunks": {"count": count, "bytes": size, "digest": "sha256:" + "0" * 64},
    }


@pytest.mark.parametrize(
    ("count", "size", "cause"),
    [
        (1_000_000, 300_000, r"output_chunks.count is 1000000, but 300000 bytes make 2 chunk\(s\) of 196608 bytes"),
        (1, 300_000, r"output_chunks.count is 1, but 300000 bytes make 2 chunk\(s\)"),
        (0, 0, r"output_chunks.count is 0, but 0 bytes make 1 chunk\(s\)"),
        (342, 64 * 1024 * 1024 + 1, r"output_chunks.bytes is 67108865; a chunked result holds 0 to 67108864 bytes"),
        (1, -1, r"output_chunks.bytes is -1"),
        (1.5, 1000, r"malformed output_chunks"),
        (True, 1000, r"malformed output_chunks"),
    ],
)
async def test_output_chunks_that_do_not_add_up_are_refused_before_reading(count: object, size: object, cause: str) -> None:
    # No connection: the receipt is refused before any chunk is read.
    with pytest.raises(OutputError, match=r"^receipt of command c1: " + cause):
        await reassemble(None, receipt_claiming(count, size), timeout=1)  # type: ignore[arg-type]


def event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "body": {"kind": "phase", "name": f"p{seq}"}}


async def reordered(arrivals: list[int | None], from_seq: int, count: int, gap_wait: float = 0.2) -> list[int]:
    """The seqs yielded for `arrivals` (None: a 0.4 s pause), then a stream that stays open."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def feed() -> None:
        for arrival in arrivals:
            if arrival is None:
                await asyncio.sleep(0.4)
            else:
                queue.put_nowait(event(arrival))

    async def next_event(timeout: float | None) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    feeder = asyncio.create_task(feed())
    out: list[int] = []
    async for e in in_seq_order(next_event, from_seq, gap_wait):
        out.append(e["seq"])
        if len(out) == count:
            break
    feeder.cancel()
    return out


async def test_out_of_order_events_come_out_in_seq_order_once_each() -> None:
    assert await reordered([1, 3, 2, 2, 5, 4, 1, 6], 1, 6) == [1, 2, 3, 4, 5, 6]


async def test_events_before_from_seq_are_not_yielded() -> None:
    assert await reordered([1, 2, 4, 3, 5], 3, 3) == [3, 4, 5]


async def test_a_gap_is_waited_for_then_skipped() -> None:
    assert await reordered([1, 3, 2, 4, 6], 1, 5) == [1, 2, 3, 4, 6]


async def test_a_seq_arriving_after_its_gap_was_skipped_is_dropped() -> None:
    assert await reordered([1, 3, None, 2, 4], 1, 3) == [1, 3, 4]
