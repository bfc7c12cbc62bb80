"""`Receipt`: the one outcome of a command, and the way to its whole result."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client

from . import chunks
from .models import EventRange, Failure, OutputChunks
from .models import Receipt as ReceiptMessage


class Receipt:
    """A command's receipt (`message` holds it as published) and its result.

    `await receipt.output()` is the command's whole result: the receipt's
    `output` when present, otherwise the value reassembled and verified from
    its `result_chunk` events (`output_chunks`); None when there is neither
    (a command that failed before producing one).
    """

    def __init__(self, message: ReceiptMessage, nc: Client) -> None:
        #: The receipt as published (see `runfleet.models.Receipt`).
        self.message = message
        self._nc = nc

    def __repr__(self) -> str:
        m = self.message
        return f"Receipt(run_id={m.get('run_id')!r}, command_id={m.get('command_id')!r}, status={m.get('status')!r})"

    @property
    def status(self) -> str:
        """`completed`, `failed`, `cancelled` or `timed-out`."""
        return self.message["status"]

    @property
    def command_id(self) -> str:
        return self.message["command_id"]

    @property
    def run_id(self) -> str:
        return self.message["run_id"]

    @property
    def tenant(self) -> str:
        return self.message["tenant"]

    @property
    def seq(self) -> int:
        return self.message["seq"]

    @property
    def failure(self) -> Failure | None:
        """`{"kind", "message"}` when the command did not complete."""
        return self.message.get("failure")

    @property
    def events(self) -> EventRange | None:
        """The run events the command produced: `{"first_seq", "last_seq"}`."""
        return self.message.get("events")

    @property
    def output_chunks(self) -> OutputChunks | None:
        """`{"count", "bytes", "digest"}` when the result travels as chunks."""
        return self.message.get("output_chunks")

    @property
    def is_chunked(self) -> bool:
        return bool(self.message.get("output_chunks"))

    async def output(self, timeout: float = 60.0) -> Any:
        """The whole result; raises `OutputError` when chunks cannot be put together."""
        if "output" in self.message:
            return self.message["output"]
        if self.is_chunked:
            return await chunks.reassemble(self._nc, self.message, timeout)
        return None
