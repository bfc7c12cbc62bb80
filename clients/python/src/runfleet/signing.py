"""Signing cancels with an NKey user seed (schemas/README.md, "Signed cancels").

A fleet that runs with `RUNFLEET_REQUIRE_SIGNED_CONTROL=true` accepts a
`control.cancel` only with three headers:

- `Runfleet-Signer`: the public NKey (`U…`);
- `Runfleet-Signed-At`: Unix time in milliseconds, decimal;
- `Runfleet-Signature`: base64url without padding of the Ed25519 signature
  of `b"runfleet-control-v1\\n" + subject + b"\\n" + signed_at + b"\\n" + body`.
"""

from __future__ import annotations

import base64
import binascii
import os
import time

import nkeys  # type: ignore[import-untyped, unused-ignore]

from .errors import SigningError

SIGNER = "Runfleet-Signer"
SIGNED_AT = "Runfleet-Signed-At"
SIGNATURE = "Runfleet-Signature"
DOMAIN = b"runfleet-control-v1"


def generate_seed() -> str:
    """A new NKey user seed (`SU…`); `Signer(seed).public_key` is what to register."""
    return str(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode())


class Signer:
    """Signs control messages with one user seed."""

    def __init__(self, seed: str | bytes) -> None:
        raw = (seed.encode() if isinstance(seed, str) else bytes(seed)).strip()
        _check_seed(raw)
        try:
            self._keys = nkeys.from_seed(bytearray(raw))
            self.public_key: str = self._keys.public_key.decode()
        except Exception as err:  # nkeys raises its own classes, and binascii / nacl ones
            raise SigningError(f"signing_key: not a usable NKey seed ({type(err).__name__})") from None

    def headers(self, subject: str, body: bytes, signed_at_ms: int | None = None) -> dict[str, str]:
        """The three signature headers for publishing `body` on `subject`."""
        signed_at = str(signed_at_ms if signed_at_ms is not None else time.time_ns() // 1_000_000)
        signed = DOMAIN + b"\n" + subject.encode() + b"\n" + signed_at.encode() + b"\n" + body
        signature = base64.urlsafe_b64encode(self._keys.sign(signed)).rstrip(b"=").decode()
        return {SIGNER: self.public_key, SIGNED_AT: signed_at, SIGNATURE: signature}


def _check_seed(raw: bytes) -> None:
    """Refuses anything but a well-formed user seed, naming what is wrong (never the value)."""
    if not raw.startswith(b"SU"):
        kind = "an NKey seed of another role" if raw.startswith(b"S") else "not an NKey seed"
        raise SigningError(f"signing_key: {kind}; expected a user seed starting with SU")
    try:
        decoded = base64.b32decode(raw + b"=" * (-len(raw) % 8))
    except (binascii.Error, ValueError):
        raise SigningError("signing_key: not valid base32") from None
    if len(decoded) != 36:
        raise SigningError(f"signing_key: a seed holds 36 bytes, this one {len(decoded)}")
    body, crc = decoded[:-2], decoded[-2:]
    if nkeys.crc16(bytearray(body)).to_bytes(2, "little") != crc:
        raise SigningError("signing_key: checksum mismatch (a mistyped seed?)")
