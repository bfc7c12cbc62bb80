"""`Producer`: validated, deduplicated, acknowledged publishes, and their answers.

Mirrors the Rust `runfleet-producer`: every message is checked against its
JSON Schema before it leaves the process, published on its subject with
`Nats-Msg-Id` `<idempotency_key>~<sha256 prefix>`, `Runfleet-Schema` and a
fresh `traceparent`, and the call returns when JetStream has stored it.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from . import answers, validate
from .errors import ConnectError, MessageTooLarge, ReceiptTimeout, ValidationError
from .in_seq_order import GAP_WAIT, in_seq_order
from .messages import EVENT_STREAM, encode, event_subject, msg_id, new_cancel, new_command, new_run, subject_of
from .models import CommandKind, DeadLetter, Event, Priority, ResourceBundle
from .publish import DEFAULT_PUBLISH_RETRY, Accepted, new_traceparent, publish_acked
from .reader import StreamReader
from .receipt import Receipt
from .signing import Signer

log = logging.getLogger("runfleet")

PRODUCER_KINDS = ("run.create", "command.create", "control.cancel")
#: Room kept for the headers when checking a message against `max_payload`.
HEADER_ALLOWANCE = 1024
#: How many sent commands are remembered to match their receipts and dead letters.
_REMEMBERED = 10_000


class Producer:
    """A NATS connection that publishes contract messages; see `Producer.connect`."""

    def __init__(self, nc: Client, *, signing_key: str | None = None, publish_retry: float = DEFAULT_PUBLISH_RETRY) -> None:
        self._nc = nc
        self._signer = Signer(signing_key) if signing_key else None
        self._publish_retry = publish_retry
        self._sent: collections.OrderedDict[tuple[str, str, str], dict[str, Any]] = collections.OrderedDict()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        creds_file: str | None = None,
        nkey_seed: str | None = None,
        inbox_prefix: str | None = None,
        signing_key: str | None = None,
        publish_retry: float = DEFAULT_PUBLISH_RETRY,
        connect_timeout: float = 5.0,
        name: str = "runfleet-producer-python",
    ) -> Producer:
        """Connects to NATS at `url` (`nats://user:pass@host:4222` works too).

        `inbox_prefix`: a confined tenant receives only on `_INBOX_<tenant>`.
        `signing_key`: an NKey user seed (`SU…`); every cancel is then signed.
        `publish_retry`: seconds a publish is retried while JetStream cannot
        answer (0: never). Raises `SigningError` for an unusable seed (before
        connecting) and `ConnectError` when NATS cannot be reached.
        """
        signer_seed = signing_key
        if signer_seed:
            Signer(signer_seed)  # refuse a bad seed before connecting

        errors: list[Exception] = []

        async def quiet(err: Exception) -> None:
            errors.append(err)
            log.debug("nats: %s", err)

        options: dict[str, Any] = {
            "servers": [url],
            "name": name,
            "connect_timeout": connect_timeout,
            "allow_reconnect": True,
            # A few tries at first (an unreachable server is an error) ...
            "max_reconnect_attempts": 2,
            "reconnect_time_wait": 0.5,
            "error_cb": quiet,
        }
        for key, value in (("user", user), ("password", password), ("token", token)):
            if value is not None:
                options[key] = value
        if creds_file:
            options["user_credentials"] = creds_file
        if nkey_seed:
            options["nkeys_seed_str"] = nkey_seed
        if inbox_prefix:
            options["inbox_prefix"] = inbox_prefix
        try:
            nc = await nats.connect(**options)
        except Exception as err:
            cause = errors[-1] if errors else err
            raise ConnectError(f"cannot reach NATS at {url}: {type(cause).__name__}: {cause}") from err
        # ... then, once connected, reconnect for ever (a restarted server comes back).
        nc.options["max_reconnect_attempts"] = -1
        return cls(nc, signing_key=signer_seed, publish_retry=publish_retry)

    @property
    def nc(self) -> Client:
        """The underlying nats-py client."""
        return self._nc

    @property
    def signer_public_key(self) -> str | None:
        """The public NKey cancels are signed with (what to register), if any."""
        return self._signer.public_key if self._signer else None

    async def close(self) -> None:
        """Drains and closes the connection."""
        if not self._nc.is_closed:
            try:
                await self._nc.drain()
            except Exception:
                await self._nc.close()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- publishing ----------------------------------------------------------

    async def create_run(
        self,
        tenant: str,
        project: str,
        backend_profile: str,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        resource_bundle: ResourceBundle | None = None,
        budgets: Mapping[str, float] | None = None,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        priority: Priority | None = None,
        concurrency_key: str | None = None,
        created_at: str | _dt.datetime | None = None,
    ) -> Accepted:
        """Publishes a `run.create` (run id: a fresh UUIDv7 unless given; key `run:<run_id>`)."""
        return await self.publish(
            new_run(
                tenant,
                project,
                backend_profile,
                run_id=run_id,
                session_id=session_id,
                resource_bundle=resource_bundle,
                budgets=budgets,
                labels=labels,
                idempotency_key=idempotency_key,
                priority=priority,
                concurrency_key=concurrency_key,
                created_at=created_at,
            )
        )

    async def send_command(
        self,
        tenant: str,
        run_id: str,
        seq: int,
        payload: Mapping[str, Any],
        *,
        kind: CommandKind = "turn",
        command_id: str | None = None,
        idempotency_key: str | None = None,
        timeout_ms: int | None = None,
        not_before: str | _dt.datetime | None = None,
        schedule_to_start_ms: int | None = None,
        priority: Priority | None = None,
        created_at: str | _dt.datetime | None = None,
    ) -> Accepted:
        """Publishes command `seq` of a run (key `cmd:<run_id>:<seq>` unless given)."""
        return await self.publish(
            new_command(
                tenant,
                run_id,
                seq,
                payload,
                kind=kind,
                command_id=command_id,
                idempotency_key=idempotency_key,
                timeout_ms=timeout_ms,
                not_before=not_before,
                schedule_to_start_ms=schedule_to_start_ms,
                priority=priority,
                created_at=created_at,
            )
        )

    async def cancel(
        self,
        tenant: str,
        run_id: str,
        command_id: str | None = None,
        reason: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Publishes a `control.cancel` of the run, or of one command; signed when
        the producer has a `signing_key`. A refused cancel (an unsigned one where
        signatures are required) has no receipt: see `wait_for_refusal`."""
        return await self.publish(new_cancel(tenant, run_id, command_id, reason, idempotency_key=idempotency_key))

    async def publish(self, message: Mapping[str, Any], *, traceparent: str | None = None) -> Accepted:
        """Validates any producer message and publishes it, awaiting the PubAck.

        Raises `ValidationError` (nothing published), `MessageTooLarge`, or
        `PublishError` once transient failures have been retried for
        `publish_retry` seconds."""
        kind = message.get("schema") if isinstance(message, Mapping) else None
        if kind not in PRODUCER_KINDS:
            expected = ", ".join(json.dumps(k) for k in PRODUCER_KINDS)
            label = kind if isinstance(kind, str) else "message"
            raise ValidationError(label, [("/schema", f"expected one of {expected}, found {json.dumps(kind)}")])
        message = dict(message)
        validate.check(kind, message)
        payload = encode(message)
        subject = subject_of(message)
        limit = self._nc.max_payload or (1 << 20)
        if len(payload) + HEADER_ALLOWANCE > limit:
            raise MessageTooLarge(subject, kind, len(payload), limit)
        headers = {
            "Nats-Msg-Id": msg_id(message["idempotency_key"], payload),
            "Runfleet-Schema": kind,
            "traceparent": traceparent or new_traceparent(),
        }
        if kind == "control.cancel" and self._signer is not None:
            headers.update(self._signer.headers(subject, payload))
        ack = await publish_acked(self._nc, subject, payload, headers, self._publish_retry)
        if kind == "command.create":
            self._remember(message)
        return Accepted(
            message=message,
            subject=subject,
            msg_id=headers["Nats-Msg-Id"],
            stream=str(ack["stream"]),
            sequence=int(ack["seq"]),
            duplicate=bool(ack.get("duplicate", False)),
        )

    def _remember(self, command: dict[str, Any]) -> None:
        key = (command["tenant"], command["run_id"], command["command_id"])
        self._sent[key] = command
        self._sent.move_to_end(key)
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)

    # -- answers -----------------------------------------------------------------

    async def wait_for_receipt(
        self,
        tenant: str,
        run_id: str,
        command_id: str,
        timeout: float = 60.0,
        *,
        command: Mapping[str, Any] | None = None,
    ) -> Receipt:
        """Waits for the receipt of a command, or the dead letter that refused it.

        The command sent through this producer (or given as `command`) is
        matched exactly: a receipt of the same id but another seq or key is
        not its answer, and a dead letter refusing those exact bytes raises
        `Refused`. Raises `ReceiptTimeout` when neither arrives in time."""
        sent = dict(command) if command is not None else self._sent.get((tenant, run_id, command_id))
        found = await answers.wait_for_answer(self._nc, tenant, run_id, command_id, timeout, sent)
        if found is None:
            raise ReceiptTimeout(f"receipt of command {command_id} (run {run_id})", timeout)
        return Receipt(found, self._nc)  # type: ignore[arg-type]

    async def wait_for_refusal(self, accepted: Accepted, timeout: float = 10.0) -> DeadLetter | None:
        """The dead letter refusing exactly this published message, if one
        arrives within `timeout` seconds (None otherwise): how to learn that a
        cancel was refused (`signature-invalid`), as cancels have no receipt."""
        since = _dt.datetime.now(_dt.UTC)
        return await answers.wait_for_refusal(self._nc, accepted.message, timeout, since)

    async def follow_events(
        self, tenant: str, run_id: str, from_seq: int = 1, *, gap_wait: float = GAP_WAIT
    ) -> AsyncGenerator[Event, None]:
        """The run's events with `seq >= from_seq`, in seq order, each once:
        stored ones first, then live, for as long as you iterate. Survives
        reconnects (it resumes after the last event read). A seq missing for
        `gap_wait` seconds with a later one held is skipped. Close it with
        `contextlib.aclosing` (or let the loop end) to free its consumer."""
        reader = StreamReader(self._nc, EVENT_STREAM, event_subject(tenant, run_id))

        async def next_event(timeout: float | None) -> dict[str, Any] | None:
            stored = await reader.next(timeout)
            if stored is None:
                return None
            try:
                event = json.loads(stored.data)
            except ValueError:
                log.warning("undecodable event on %s skipped", stored.subject)
                return None
            return event if isinstance(event, dict) else None

        try:
            async for event in in_seq_order(next_event, from_seq, gap_wait):
                yield event  # type: ignore[misc]
        finally:
            await reader.close()
