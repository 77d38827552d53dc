// Pool mode's TLS: the certificate a handshake gets is the one of the stream its server name
// (SNI) reaches. A secure context costs about 30 KiB and 0.4 ms to build (measured with one
// P-256 certificate, Node 24), and is needed only during a handshake (an open session keeps the
// one it started with), so the few recently used are kept and the rest built again on demand.
import tls, { type SecureContext } from "node:tls";

export interface SniOptions {
  /** CA bundle of device certificates, asked for as the single-stream relay does. */
  clientCaPem?: Buffer | string;
  /** Contexts kept built. */
  maxCached?: number;
  /** The stream id that `serverName` reaches, or undefined (the handshake is ended). */
  idFor(serverName: string): string | undefined;
  /** A handshake was ended: `reason` is a bounded label. */
  onRefused(reason: "unknown_server_name" | "missing_server_name"): void;
}

/** An error the TLS layer reports for a refused server name: the handshake-failure log skips it. */
export class ServerNameRefused extends Error {}

export class SniContexts {
  private readonly pems = new Map<string, { cert: Buffer; key: Buffer }>();
  /** Least recently used first (a Map keeps insertion order). */
  private readonly cache = new Map<string, SecureContext>();
  private readonly o: SniOptions;

  constructor(o: SniOptions) {
    this.o = o;
  }

  /** A stream's certificate and key (relay/stream-folder.ts checked they fit); its context is built at its next handshake. */
  set(id: string, cert: Buffer, key: Buffer): void {
    this.pems.set(id, { cert, key });
    this.cache.delete(id);
  }

  delete(id: string): void {
    this.pems.delete(id);
    this.cache.delete(id);
  }

  private build(cert: Buffer, key: Buffer): SecureContext {
    const ca = this.o.clientCaPem;
    return tls.createSecureContext({ cert, key, ...(ca ? { ca } : {}), minVersion: "TLSv1.3" });
  }

  /** For the server's SNICallback. */
  readonly callback = (serverName: string, done: (err: Error | null, context?: SecureContext) => void): void => {
    const id = serverName ? this.o.idFor(serverName) : undefined;
    const pem = id === undefined ? undefined : this.pems.get(id);
    if (id === undefined || !pem) {
      this.o.onRefused(serverName ? "unknown_server_name" : "missing_server_name");
      done(new ServerNameRefused(`no stream here answers to server name ${JSON.stringify(serverName.slice(0, 253))}`));
      return;
    }
    let context = this.cache.get(id);
    try {
      context ??= this.build(pem.cert, pem.key);
    } catch (err) {
      done(err as Error);
      return;
    }
    this.remember(id, context);
    done(null, context);
  };

  get cached(): number {
    return this.cache.size;
  }

  private remember(id: string, context: SecureContext): void {
    this.cache.delete(id);
    this.cache.set(id, context);
    const max = this.o.maxCached ?? 256;
    while (this.cache.size > max) this.cache.delete(this.cache.keys().next().value!);
  }
}
