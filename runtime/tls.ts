// TLS for every gRPC hop. TLS 1.3 is the floor for every context this process makes, set once
// here because grpc-js exposes no per-server minimum version.
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";
import { DeviceStreamsError } from "./errors.ts";

tls.DEFAULT_MIN_VERSION = "TLSv1.3";

export function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DeviceStreamsError(
      "DS_TLS_FILE",
      `cannot read the ${what} at ${path}: ${(err as Error).message}; check the path and that this user may read it`,
      { cause: err },
    );
  }
}

export interface ServerTls {
  certPem: Buffer | string;
  keyPem: Buffer | string;
  /** CA bundle that client certificates must chain to; with it, client certificates are required. */
  clientCaPem?: Buffer | string;
  /**
   * With clientCaPem: ask for a client certificate but admit callers without one (or with one
   * that does not chain); whoever reads the certificate (getAuthContext) must verify it.
   */
  clientCertOptional?: boolean;
}

export function serverCredentials(t: ServerTls): ServerCredentials {
  const ca = t.clientCaPem ? Buffer.from(t.clientCaPem) : null;
  const creds = ServerCredentials.createSsl(
    ca,
    [{ cert_chain: Buffer.from(t.certPem), private_key: Buffer.from(t.keyPem) }],
    !!ca && !t.clientCertOptional,
  );
  if (ca && t.clientCertOptional) {
    // createSsl can only require or not ask; Node's TLS server can ask without requiring.
    const internal = creds as unknown as { _getConstructorOptions(): Record<string, unknown> | null };
    const base = internal._getConstructorOptions.bind(creds);
    internal._getConstructorOptions = () => ({ ...base(), requestCert: true, rejectUnauthorized: false });
  }
  return creds;
}

export interface ClientTls {
  /** CA bundle that the server's certificate must chain to; undefined means the system's roots. */
  caPem?: Buffer | string;
  /** Client certificate for mutual TLS (device identity). */
  certPem?: Buffer | string;
  keyPem?: Buffer | string;
  /** A client certificate that is renewed under open channels; wins over certPem/keyPem. */
  identity?: RenewableIdentity;
}

/**
 * A device's certificate, renewed while relay sessions stay open: each new TLS connection of the
 * relay client (transport/relay-dial.ts) presents the latest, open connections keep theirs.
 */
export class RenewableIdentity {
  private current: { certificate: Buffer; privateKey: Buffer };

  constructor(certPem: string, keyPem: string) {
    this.current = { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) };
  }

  /** The certificate and key a new TLS connection presents. */
  keyPair(): { certificate: Buffer; privateKey: Buffer } {
    return this.current;
  }

  update(certPem: string, keyPem: string): void {
    this.current = { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) };
  }
}

/** grpc-js credentials (the hub, access reviews); an identity's current certificate, as it is now. */
export function channelCredentials(t: ClientTls): ChannelCredentials {
  const pair = t.identity?.keyPair();
  const key = pair?.privateKey ?? t.keyPem;
  const cert = pair?.certificate ?? t.certPem;
  return ChannelCredentials.createSsl(
    t.caPem ? Buffer.from(t.caPem) : null,
    key ? Buffer.from(key) : null,
    cert ? Buffer.from(cert) : null,
  );
}

// grpc-js passes a server's host as the TLS server name even when it is an IP address; Node
// then skips SNI (as RFC 6066 requires) and warns on every connection. The certificate is still
// checked against the IP, so the warning says nothing a user can act on: drop just that one.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
  const options = rest[0] as { code?: string } | string | undefined;
  const code = typeof options === "object" ? options?.code : rest[1];
  if (code === "DEP0123") return;
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;
