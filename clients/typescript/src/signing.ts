/**
 * Signed cancels (schemas/README.md "Signed cancels"): three headers proving
 * that a registered key of the tenant sent this exact `control.cancel`.
 *
 * The signature is Ed25519 (an NKey user seed, `SU…`) over
 * `runfleet-control-v1\n<subject>\n<signed-at ms>\n<body>`, base64url
 * without padding.
 */
import { fromSeed, type KeyPair } from "@nats-io/nkeys";
import { SigningError } from "./errors.js";

/** The header naming the signer's public NKey (`U…`). */
export const SIGNER_HEADER = "Runfleet-Signer";
/** The header with the signing time, Unix milliseconds as decimal digits. */
export const SIGNED_AT_HEADER = "Runfleet-Signed-At";
/** The header with the signature. */
export const SIGNATURE_HEADER = "Runfleet-Signature";

/** The three signature headers of one message. */
export interface Signature {
  readonly signer: string;
  readonly signedAt: string;
  readonly signature: string;
}

/** A signer made from an NKey user seed. */
export class Signer {
  private readonly keyPair: KeyPair;
  /** The public key (`U…`) to register with `runfleet.api.signer.add`. */
  readonly publicKey: string;

  /** @throws {SigningError} when `seed` is not an NKey user seed (`SU…`). */
  constructor(seed: string) {
    const trimmed = seed.trim();
    if (!trimmed.startsWith("SU")) {
      throw new SigningError("signingKey: expected an NKey user seed (starting with \"SU\")");
    }
    try {
      this.keyPair = fromSeed(new TextEncoder().encode(trimmed));
      this.publicKey = this.keyPair.getPublicKey();
    } catch (err) {
      throw new SigningError(`signingKey: not a valid NKey seed (${describe(err)})`, { cause: err });
    }
  }

  /** The signature headers for `body` published on `subject` at `now` (Unix ms). */
  sign(subject: string, body: Uint8Array, now: number = Date.now()): Signature {
    const signedAt = String(Math.trunc(now));
    const signature = this.keyPair.sign(signedBytes(subject, signedAt, body));
    return {
      signer: this.publicKey,
      signedAt,
      signature: Buffer.from(signature).toString("base64url"),
    };
  }
}

/** The bytes a signature covers. */
export function signedBytes(subject: string, signedAt: string, body: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`runfleet-control-v1\n${subject}\n${signedAt}\n`);
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head, 0);
  bytes.set(body, head.length);
  return bytes;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
