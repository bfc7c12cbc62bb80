/**
 * Connecting to NATS: a URL (credentials in it are honoured) or options with
 * user/password, a token, a creds file or an NKey seed, and the tenant's
 * inbox prefix (`_INBOX_<tenant>`: a confined tenant may receive nothing
 * else). The connection reconnects for ever, so followers survive a server
 * restart.
 */
import { readFileSync } from "node:fs";
import { connect as natsConnect, type NodeConnectionOptions } from "@nats-io/transport-node";
import { credsAuthenticator, nkeyAuthenticator, type NatsConnection } from "@nats-io/nats-core";
import { ConnectionError } from "./errors.js";

/** How to reach and log in to NATS. */
export interface ConnectOptions {
  /** One URL or several (`nats://host:4222`); credentials in a URL are used. */
  servers?: string | string[];
  user?: string;
  pass?: string;
  token?: string;
  /** A `.creds` file (JWT and seed). */
  credsFile?: string;
  /** An NKey user seed (`SU…`) to log in with (not the signing key). */
  nkeySeed?: string;
  /** The tenant's inbox prefix, `_INBOX_<tenant>`, for confined tenants. */
  inboxPrefix?: string;
  /** A seed (`SU…`) that signs every cancel ({@link Signer}). */
  signingKey?: string;
  /** How long a publish JetStream cannot answer is retried (default 30 000; 0: never). */
  publishRetryMs?: number;
  /** The connection's name, shown by the server. */
  name?: string;
}

/** Connects with `options`. */
export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const urls = options.servers === undefined ? ["nats://127.0.0.1:4222"] : [options.servers].flat();
  const servers: string[] = [];
  let user = options.user;
  let pass = options.pass;
  let token = options.token;
  for (const raw of urls) {
    const { server, username, password } = splitCredentials(raw);
    servers.push(server);
    if (username !== undefined && user === undefined && token === undefined) {
      if (password === undefined) token = username;
      else [user, pass] = [username, password];
    }
  }
  const natsOptions: NodeConnectionOptions = {
    servers,
    name: options.name ?? "runfleet-producer-ts",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  };
  if (user !== undefined) natsOptions.user = user;
  if (pass !== undefined) natsOptions.pass = pass;
  if (token !== undefined) natsOptions.token = token;
  if (options.inboxPrefix !== undefined) natsOptions.inboxPrefix = options.inboxPrefix;
  if (options.credsFile !== undefined) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(options.credsFile);
    } catch (err) {
      throw new ConnectionError(`credsFile: cannot read ${options.credsFile}: ${(err as Error).message}`, { cause: err });
    }
    natsOptions.authenticator = credsAuthenticator(creds);
  } else if (options.nkeySeed !== undefined) {
    natsOptions.authenticator = nkeyAuthenticator(new TextEncoder().encode(options.nkeySeed.trim()));
  }
  try {
    return await natsConnect(natsOptions);
  } catch (err) {
    throw new ConnectionError(`cannot reach NATS at ${servers.join(", ")}: ${(err as Error).message}`, { cause: err });
  }
}

/** A server URL without its credentials, and the credentials. */
function splitCredentials(raw: string): { server: string; username?: string; password?: string } {
  let url: URL;
  try {
    url = new URL(raw.includes("://") ? raw : `nats://${raw}`);
  } catch {
    return { server: raw };
  }
  if (url.username === "") {
    return { server: raw };
  }
  const username = decodeURIComponent(url.username);
  const password = url.password === "" ? undefined : decodeURIComponent(url.password);
  url.username = "";
  url.password = "";
  const server = url.toString().replace(/\/$/, "");
  return password === undefined ? { server, username } : { server, username, password };
}
