"""The real fleet the tests run against: `runfleet-test-fleet`, one per session.

The fixture binary (env `RUNFLEET_TEST_FLEET`, else
`<repo>/target/debug/runfleet-test-fleet`) starts nats-server, PostgreSQL
and workers serving the `echo`, `agent` and `big` profiles, prints one JSON
line ({"nats_url", "database_url", "workers"}) and then answers commands on
stdin (`restart-nats`, `worker-logs`); closing stdin stops it all. The
environment passes through (`RUNFLEET_NATS_SERVER`, `DATABASE_URL`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runfleet import Producer

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 180.0


class Fleet:
    """One running `runfleet-test-fleet` process (started at once, ready at `ready()`)."""

    def __init__(self, *args: str) -> None:
        binary = os.environ.get("RUNFLEET_TEST_FLEET") or str(REPO / "target" / "debug" / "runfleet-test-fleet")
        if not Path(binary).is_file():
            pytest.fail(
                f"the fleet fixture {binary} does not exist: build it (`cargo build -p runfleet-tests "
                "--bins`, scripts/test does) or set RUNFLEET_TEST_FLEET",
                pytrace=False,
            )
        self.log = tempfile.NamedTemporaryFile(prefix="runfleet-test-fleet-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [binary, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            encoding="utf-8",
        )
        self._lock = threading.Lock()
        self.info: dict[str, Any] = {}
        self.nats_url = ""

    def ready(self) -> Fleet:
        """Waits for the fixture's first line (its URLs)."""
        if not self.info:
            self.info = self._read_line(START_TIMEOUT, "its start")
            self.nats_url = self.info["nats_url"]
        return self

    def _read_line(self, timeout: float, what: str) -> dict[str, Any]:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.stop()
            tail = Path(self.log.name).read_text(errors="replace")[-4000:]
            pytest.fail(f"runfleet-test-fleet: no answer for {what} within {timeout:.0f}s; its log:\n{tail}", pytrace=False)
        return dict(json.loads(result[0]))

    def command(self, line: str, timeout: float = 60.0) -> dict[str, Any]:
        """Sends one command line (`restart-nats`, `worker-logs`) and returns the answer."""
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            return self._read_line(timeout, line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except Exception:
                self.proc.kill()
                self.proc.wait()


FLEETS = {
    "fleet": ("--workers", "2"),
    "signed_fleet": ("--workers", "1", "--require-signed-control"),
}
_started: dict[str, Fleet] = {}
_needed: set[str] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Remembers which fleets the selected tests need, so they boot together."""
    needed = {name for item in items for name in getattr(item, "fixturenames", ()) if name in FLEETS}
    _started.clear()
    _needed.clear()
    _needed.update(needed)


def _fleet(name: str) -> Fleet:
    # Start every fleet the session needs now (they take a while to boot).
    for other in sorted(_needed | {name}):
        if other not in _started:
            _started[other] = Fleet(*FLEETS[other])
    return _started[name].ready()


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """A fleet with two workers (no signatures required)."""
    yield _fleet("fleet")
    _started["fleet"].stop()


@pytest.fixture(scope="session")
def signed_fleet() -> Iterator[Fleet]:
    """A fleet whose worker requires signed cancels."""
    yield _fleet("signed_fleet")
    _started["signed_fleet"].stop()


def pytest_sessionfinish() -> None:
    for started in _started.values():
        started.stop()


@pytest.fixture
async def producer(fleet: Fleet) -> AsyncIterator[Producer]:
    async with await Producer.connect(fleet.nats_url) as connected:
        yield connected


@pytest.fixture
def tenant() -> str:
    """A tenant of its own for each test, so dead letters never mix."""
    return f"t{uuid.uuid4().hex[:12]}"


def expected_blob(size: int) -> str:
    """What `tests/programs/big_result.py` puts in `blob`."""
    return ("0123456789abcdef" * (size // 16 + 1))[:size]
