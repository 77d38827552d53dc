// One gRPC call served on node:http2 (docs/adr/0002): the request stream's DATA chunks as they
// came (length prefixes and all), writes of already-framed bytes, and the call's status sent as
// trailers. Nothing here decodes a message: the relay forwards tunnel frames untouched, and a call
// that carries messages (Attach) is wrapped by MessageServerCall.
import { EventEmitter } from "node:events";
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { TLSSocket } from "node:tls";
import { Metadata, status } from "@grpc/grpc-js";
import { grpcResponseContentType, parseGrpcTimeout, statusTrailers } from "./grpc-wire.ts";

/** How long a caller may keep its side open after our status. */
const closeGraceMs = 2_000;

/** Headers that are the protocol's, not the caller's metadata (as grpc-js strips them). */
const protocolHeaders = ["grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "accept-encoding", "te"];

/**
 * Events: `data` (a DATA chunk: any slice of the framed messages), `end` (the caller half-closed),
 * `drain`, `cancelled` (the caller or its connection went away before a status was sent), `close`.
 * Reading starts with the first resume().
 */
export class H2ServerCall extends EventEmitter {
  private md: Metadata | undefined;
  /** The method's path, e.g. /devicestreams.v1alpha1.Relay/Connect. */
  readonly path: string;
  cancelled = false;
  private readonly stream: ServerHttp2Stream;
  private headersSent = false;
  private statusSent = false;
  private deadline: NodeJS.Timeout | undefined;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
    super();
    this.stream = stream;
    this.path = String(headers[":path"]);
    const md = Metadata.fromHttp2Headers(headers);
    for (const key of protocolHeaders) md.remove(key);
    md.remove("content-type");
    this.md = md;
    // Paused until its handler resumes it: bytes that come while the call is authenticated wait in
    // the stream's window instead of being emitted to nobody.
    stream.pause();
    stream.on("data", (chunk: Buffer) => this.emit("data", chunk));
    stream.on("end", () => this.emit("end"));
    stream.on("drain", () => this.emit("drain"));
    stream.on("error", () => {}); // 'close' follows, and says what matters: whether a status was sent
    stream.once("close", () => {
      clearTimeout(this.deadline);
      if (!this.statusSent) {
        this.cancelled = true;
        this.emit("cancelled");
      }
      this.emit("close");
    });
    // Read into a variable of its own: a closure that named `headers` would keep the whole request's
    // headers alive with every closure made here (one V8 context), for the life of the call.
    const timeoutHeader = headers["grpc-timeout"];
    const timeout = parseGrpcTimeout(timeoutHeader);
    if (timeout !== undefined) {
      if (Number.isNaN(timeout)) {
        queueMicrotask(() => this.fail(status.INTERNAL, `invalid grpc-timeout "${timeoutHeader}"`));
      } else {
        this.deadline = setTimeout(() => this.fail(status.DEADLINE_EXCEEDED, "Deadline exceeded"), timeout);
      }
    }
  }

  /** The caller's metadata; empty after releaseMetadata(). */
  get metadata(): Metadata {
    return this.md ?? new Metadata();
  }

  /**
   * Lets the metadata go once the call is admitted and paired: its map, tokens and user agent
   * were about a tenth of what the relay held per idle connection (docs/benchmarks.md).
   */
  releaseMetadata(): void {
    this.md = undefined;
  }

  /** `address:port` of the caller, as grpc-js's getPeer() gives it (the connection gate's key). */
  getPeer(): string {
    const s = this.stream.session?.socket;
    return s?.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : "unknown";
  }

  /** The server name the caller sent in its TLS handshake (SNI), if any: a pool relay routes by it. */
  serverName(): string | undefined {
    const name = (this.stream.session?.socket as TLSSocket | undefined)?.servername;
    return typeof name === "string" && name ? name : undefined;
  }

  /** The caller's TLS client certificate (DER), only when TLS verified it against our CA. */
  verifiedPeerCertificate(): Buffer | undefined {
    const s = this.stream.session?.socket as TLSSocket | undefined;
    if (!s?.authorized) return undefined;
    return s.getPeerCertificate()?.raw;
  }

  /** Writes framed bytes; false when the caller's window and our buffer are full (wait for 'drain'). */
  write(framed: Buffer): boolean {
    if (this.statusSent || this.stream.destroyed) return false;
    this.sendHeaders();
    return this.stream.write(framed);
  }

  /** Sends the response headers now (they are otherwise sent with the first write). */
  sendMetadata(): void {
    if (!this.statusSent && !this.stream.destroyed) this.sendHeaders();
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  /** After the status: nothing more may be written. */
  get writableEnded(): boolean {
    return this.statusSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  get readableEnded(): boolean {
    return this.stream.readableEnded;
  }

  /** Ends the call with OK, after everything written. */
  end(): void {
    this.sendStatus(status.OK, "");
  }

  /** Ends the call with an error status; `details` is our `DS_CODE: message` text. */
  fail(code: status, details: string): void {
    this.sendStatus(code, details);
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond({ ":status": 200, "content-type": grpcResponseContentType }, { waitForTrailers: true });
  }

  private sendStatus(code: status, details: string): void {
    if (this.statusSent || this.stream.destroyed || this.stream.closed) return;
    this.statusSent = true;
    clearTimeout(this.deadline);
    const trailers = statusTrailers(code, details);
    // The caller may still be sending. Its call is over: gRPC clients close their side on the
    // status; one that does not is cut off after a grace (RST_STREAM NO_ERROR), not held for ever.
    // Not at once: an RST_STREAM sent with the trailers can overtake them.
    const stopReading = () => {
      setTimeout(() => {
        if (!this.stream.closed && !this.stream.destroyed) this.stream.close(constants.NGHTTP2_NO_ERROR);
      }, closeGraceMs).unref();
    };
    if (!this.headersSent) {
      this.headersSent = true;
      // Trailers-only: nothing was written, so headers and status go in one HEADERS frame.
      this.stream.respond(
        { ":status": 200, "content-type": grpcResponseContentType, ...trailers },
        { endStream: true },
      );
      stopReading();
      return;
    }
    this.stream.once("wantTrailers", () => {
      this.stream.sendTrailers(trailers);
      stopReading();
    });
    this.stream.end();
  }
}
