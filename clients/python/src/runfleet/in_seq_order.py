"""A run's events in seq order, whatever order the events stream holds them in.

The fleet numbers a run's events 1, 2, 3, … without gaps and publishes them
in that order, but the stream may hold them otherwise (a publish retried
across a leader failover lands after the next one) and may hold copies (a
redelivered command publishes again). So, like the Rust `follow::events`:

- an event ahead of the next expected seq is held until the ones before it
  arrive, then they are yielded in order;
- a seq already yielded (or below `from_seq`) is dropped;
- a missing seq that has been waited for `gap_wait` (15 s) with a later one
  held is skipped: it expired from the stream, or comes later than that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger("runfleet.follow")

#: How long a follower waits for a missing seq with a later one held.
GAP_WAIT = 15.0

#: Reads the next event (or None when `timeout` seconds pass first).
NextEvent = Callable[[float | None], Awaitable[dict[str, Any] | None]]


async def in_seq_order(next_event: NextEvent, from_seq: int = 1, gap_wait: float = GAP_WAIT) -> AsyncIterator[dict[str, Any]]:
    """Yields seqs `from_seq`, `from_seq + 1`, … from `next_event`, each once."""
    held: dict[int, dict[str, Any]] = {}
    expected = max(1, from_seq)
    gap_deadline: float | None = None
    while True:
        if expected in held:
            yield held.pop(expected)
            expected += 1
            gap_deadline = None
            if held and expected not in held:
                gap_deadline = time.monotonic() + gap_wait
            continue
        timeout = None if gap_deadline is None else max(0.0, gap_deadline - time.monotonic())
        event = await next_event(timeout)
        if event is None:
            if gap_deadline is not None and time.monotonic() >= gap_deadline:
                lowest = min(held)
                log.warning("events %d..%d missing from the stream; skipping them", expected, lowest - 1)
                expected = lowest
                gap_deadline = None
            continue
        seq = event.get("seq")
        if not isinstance(seq, int) or seq < expected:
            continue
        held.setdefault(seq, event)
        if gap_deadline is None and expected not in held:
            gap_deadline = time.monotonic() + gap_wait

