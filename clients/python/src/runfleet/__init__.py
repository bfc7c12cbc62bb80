"""runfleet: a Python producer for the runfleet worker fleet (NATS JetStream + PostgreSQL).

Publish runs and commands, wait for their receipts (and whole results,
chunked or not), follow a run's events in seq order, and cancel — following
the wire contract in the repository's `schemas/README.md`. See README.md.
"""

from .errors import (
    ConnectError,
    MessageTooLarge,
    OutputError,
    PublishError,
    ReadError,
    ReceiptTimeout,
    Refused,
    RunfleetError,
    SigningError,
    ValidationError,
)
from .in_seq_order import GAP_WAIT
from .messages import msg_id, new_cancel, new_command, new_run
from .producer import Producer
from .publish import DEFAULT_PUBLISH_RETRY, Accepted
from .receipt import Receipt
from .signing import Signer, generate_seed
from .validate import check as validate

__all__ = [
    "Accepted",
    "ConnectError",
    "DEFAULT_PUBLISH_RETRY",
    "GAP_WAIT",
    "MessageTooLarge",
    "OutputError",
    "Producer",
    "PublishError",
    "ReadError",
    "Receipt",
    "ReceiptTimeout",
    "Refused",
    "RunfleetError",
    "Signer",
    "SigningError",
    "ValidationError",
    "generate_seed",
    "msg_id",
    "new_cancel",
    "new_command",
    "new_run",
    "validate",
]
