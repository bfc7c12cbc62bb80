"""What can go wrong: one exception class per cause, all under `RunfleetError`.

Each message names the field (a JSON pointer) or the cause, so a caller can
log it as it is:

    command.create: /seq: must be at least 1, found 0
    refused by the fleet (idempotency-conflict): the key cmd:r1:1 was used ...
    no receipt of command c1 (run r1) within 30s
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import DeadLetter


class RunfleetError(Exception):
    """Base class of every error this package raises."""


class ConnectError(RunfleetError):
    """NATS could not be reached, or refused the credentials."""


class ValidationError(RunfleetError):
    """The message breaks the contract; nothing was published.

    `str(err)` is the kind, then each violation as `<pointer>: <cause>`,
    joined with `; ` (the same text the fleet would put in a dead letter):
    `command.create: /seq: must be at least 1, found 0`.
    """

    def __init__(self, kind: str, violations: list[tuple[str, str]]) -> None:
        self.kind = kind
        #: (JSON pointer, cause) pairs, the most useful first; never empty.
        self.violations = violations
        text = "; ".join(f"{p}: {c}" if p else c for p, c in violations)
        super().__init__(f"{kind}: {text}")

    @property
    def pointer(self) -> str:
        """The first offending field as a JSON pointer ("" for the whole message)."""
        return self.violations[0][0]


class PublishError(RunfleetError):
    """JetStream did not store the message (after retrying transient failures)."""

    def __init__(self, subject: str, cause: str) -> None:
        self.subject = subject
        self.cause = cause
        super().__init__(f"JetStream did not accept the message on {subject}: {cause}")


class MessageTooLarge(PublishError):
    """The message is larger than the server's `max_payload`; nothing was published."""

    def __init__(self, subject: str, kind: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            subject,
            f"the {kind} message is {size} bytes; the limit is {limit} (max_payload, less 1 KiB for headers)",
        )


class Refused(RunfleetError):
    """The fleet dead-lettered the message: no receipt will answer it."""

    def __init__(self, reason: str, message: str, dead_letter: DeadLetter | dict[str, Any]) -> None:
        #: The dead letter's failure kind (`idempotency-conflict`, `signature-invalid`, …).
        self.reason = reason
        #: The dead letter's explanation.
        self.message = message
        #: The whole dead letter.
        self.dead_letter = dead_letter
        super().__init__(f"refused by the fleet ({reason}): {message}")


class ReceiptTimeout(RunfleetError, TimeoutError):
    """No receipt (and no dead letter) arrived in time."""

    def __init__(self, what: str, waited: float) -> None:
        self.what = what
        self.waited = waited
        super().__init__(f"no {what} within {waited:g}s")


class OutputError(RunfleetError):
    """A chunked result could not be put back together (a chunk missing,
    the length or the digest wrong, not UTF-8 JSON)."""


class ReadError(RunfleetError):
    """A stream could not be read (no consumer could be created on it)."""


class SigningError(RunfleetError):
    """The signing key is unusable (not a user NKey seed `SU…`)."""
