// One gRPC bidirectional-streaming call on an HTTP/2 stream of the relay's session, with the
// surface and events of grpc-js's ClientDuplexStream that tcp-bridge.ts and the agent's relay
// session use: write/end/pause/resume/cancel; 'data', 'end', 'error', 'status', 'drain'. Each
// message goes out with one 5-byte prefix, framed in place when the frame codec left room for it;
// messages that arrive within one DATA chunk are handed on as views of it, never copied.
import { EventEmitter } from "node:events";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http2";
import { type Metadata, type StatusObject, status } from "@grpc/grpc-js";
import { flowControlWindowBytes } from "../runtime/grpc-options.ts";
import { formatGrpcTimeout, frameMessage, MessageReader, prefixBytes } from "./grpc-wire.ts";
import { callStatus, notGrpc, resetStatus, statusError, trailerStatus } from "./h2-status.ts";

export interface MethodSpec<Req, Res> {
  /** /package.Service/Method */
  path: string;
  serialize(message: Req): Uint8Array;
  deserialize(message: Buffer): Res;
  /** A longer message fails the call RESOURCE_EXHAUSTED, from its prefix, before it is held. */
  maxMessageBytes: number;
}

export interface CallEvents<Res> {
  data: [message: Res];
  metadata: [headers: Metadata];
  end: [];
  error: [error: Error & StatusObject];
  status: [status: StatusObject];
  drain: [];
}

/** What is sent before the stream exists (the session being dialled) before write() says wait. */
const queueBytes = flowControlWindowBytes;

export class H2ClientCall<Req, Res> extends EventEmitter<CallEvents<Res>> {
  /** end() was called: the request side is half-closed, or will be once the stream exists. */
  writableEnded = false;
  /** The call has its status: nothing more is sent or received. */
  destroyed = false;
  private readonly spec: MethodSpec<Req, Res>;
  private readonly reader: MessageReader;
  private readonly deadlineAt: number | undefined;
  private readonly deadline: NodeJS.Timeout | undefined;
  private stream: ClientHttp2Stream | undefined;
  private session: ClientHttp2Session | undefined;
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private needDrain = false;
  private paused = false;
  /** An OK status from the trailers, given once every message before it was read. */
  private trailers: StatusObject | undefined;
  private streamError: NodeJS.ErrnoException | undefined;
  private onChunk: ((chunk: Buffer) => void) | undefined;

  constructor(spec: MethodSpec<Req, Res>, o: { deadlineMs?: number } = {}) {
    super();
    this.spec = spec;
    this.reader = new MessageReader(spec.maxMessageBytes);
    if (o.deadlineMs !== undefined) {
      this.deadlineAt = Date.now() + o.deadlineMs;
      this.deadline = setTimeout(() => this.cancelWith(status.DEADLINE_EXCEEDED, "Deadline exceeded"), o.deadlineMs);
    }
  }

  /** Opens the stream with our metadata; sends what was written meanwhile. */
  start(session: ClientHttp2Session, metadata: OutgoingHttpHeaders): ClientHttp2Stream | undefined {
    if (this.destroyed) return undefined;
    const headers: OutgoingHttpHeaders = {
      ...metadata,
      ":method": "POST",
      ":path": this.spec.path,
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (this.deadlineAt !== undefined) headers["grpc-timeout"] = formatGrpcTimeout(this.deadlineAt - Date.now());
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers);
    } catch (err) {
      // The session closed between being handed out and this request (a GOAWAY, a loss).
      this.finish(callStatus(status.UNAVAILABLE, `Connection dropped (${(err as Error).message})`));
      return undefined;
    }
    this.stream = stream;
    this.session = session;
    stream.on("response", (h, flags) => this.onResponse(h, flags));
    stream.on("trailers", (h) => this.onTrailers(h));
    stream.on("data", (chunk: Buffer) => this.onData(chunk));
    stream.on("end", () => this.onEnd());
    stream.on("close", () => this.onClose());
    stream.on("error", (err: NodeJS.ErrnoException) => {
      // A RST_STREAM's own error says nothing its code does not; anything else explains the reset.
      if (err.code !== "ERR_HTTP2_STREAM_ERROR") this.streamError = err;
    });
    stream.on("drain", () => {
      if (!this.needDrain) return;
      this.needDrain = false;
      this.emit("drain");
    });
    if (this.paused) stream.pause();
    let ok = true;
    for (const framed of this.queued) ok = stream.write(framed);
    this.queued = [];
    this.queuedBytes = 0;
    if (this.writableEnded) stream.end();
    if (this.needDrain && ok) {
      this.needDrain = false;
      this.emit("drain");
    }
    return stream;
  }

  /** The call could not start (no connection, no credentials). */
  fail(s: StatusObject): void {
    this.finish(s);
  }

  write(message: Req): boolean {
    if (this.writableEnded || this.destroyed) return true;
    const framed = frameMessage(this.spec.serialize(message));
    if (framed.length - prefixBytes > this.spec.maxMessageBytes) {
      const size = framed.length - prefixBytes;
      this.cancelWith(
        status.RESOURCE_EXHAUSTED,
        `Sent message larger than max (${size} vs. ${this.spec.maxMessageBytes})`,
      );
      return true;
    }
    if (this.stream) {
      if (this.stream.write(framed)) return true;
    } else {
      this.queued.push(framed);
      this.queuedBytes += framed.length;
      if (this.queuedBytes < queueBytes) return true;
    }
    this.needDrain = true;
    return false;
  }

  /**
   * Sends one message made of `head` and `body` without joining them: the payload of a socket
   * read goes out as it was read (a data frame's 2–6 byte header in front), uncopied. `body` must
   * not be written to again (a fresh read, not a shared read buffer).
   */
  writeMessage(head: Buffer, body: Buffer): boolean {
    if (this.writableEnded || this.destroyed) return true;
    const size = head.length + body.length;
    if (size > this.spec.maxMessageBytes) {
      this.cancelWith(
        status.RESOURCE_EXHAUSTED,
        `Sent message larger than max (${size} vs. ${this.spec.maxMessageBytes})`,
      );
      return true;
    }
    const prefixed = Buffer.allocUnsafe(prefixBytes + head.length);
    prefixed[0] = 0;
    prefixed.writeUInt32BE(size, 1);
    prefixed.set(head, prefixBytes);
    if (this.stream) {
      // Corked, the two go down to HTTP/2 in one writev.
      this.stream.cork();
      this.stream.write(prefixed);
      const ok = this.stream.write(body);
      this.stream.uncork();
      if (ok) return true;
    } else {
      this.queued.push(prefixed, body);
      this.queuedBytes += prefixed.length + body.length;
      if (this.queuedBytes < queueBytes) return true;
    }
    this.needDrain = true;
    return false;
  }

  end(): void {
    if (this.writableEnded) return;
    this.writableEnded = true;
    if (this.stream && !this.destroyed) this.stream.end();
  }

  cancel(): void {
    this.cancelWith(status.CANCELLED, "Cancelled on client");
  }

  /**
   * Hands every DATA chunk to `onChunk` as it came instead of emitting 'data' messages: a reader
   * that walks the framing itself (frame-reader.ts) never has a message reassembled.
   */
  readChunks(onChunk: (chunk: Buffer) => void): void {
    this.onChunk = onChunk;
  }

  pause(): this {
    this.paused = true;
    this.stream?.pause();
    return this;
  }

  resume(): this {
    this.paused = false;
    this.stream?.resume();
    return this;
  }

  private cancelWith(code: status, details: string): void {
    this.finish(callStatus(code, details));
  }

  private onResponse(headers: IncomingHttpHeaders, flags: number) {
    if (flags & constants.NGHTTP2_FLAG_END_STREAM) {
      // Trailers-only: the status without a message (a refusal before anything was sent).
      return this.finish(
        headers["grpc-status"] === undefined ? (notGrpc(headers) ?? trailerStatus(headers)) : trailerStatus(headers),
        true,
      );
    }
    const refused = notGrpc(headers);
    if (refused) return this.finish(refused);
    if (this.listenerCount("metadata") > 0) this.emit("metadata", trailerStatus(headers).metadata);
  }

  private onTrailers(headers: IncomingHttpHeaders): void {
    const s = trailerStatus(headers);
    // A failure ends the call at once (messages after it are dropped, as grpc-js drops them);
    // success waits for the messages still to be read.
    if (s.code !== status.OK) this.finish(s, true);
    else this.trailers = s;
  }

  private onData(chunk: Buffer) {
    if (this.destroyed) return;
    if (this.onChunk) return this.onChunk(chunk);
    const read = this.reader.push(chunk);
    if ("error" in read) return this.cancelWith(read.code, read.error);
    for (const message of read.messages) {
      if (this.destroyed) return;
      let decoded: Res;
      try {
        decoded = this.spec.deserialize(message);
      } catch (err) {
        return this.cancelWith(status.INTERNAL, `Failed to parse server response: ${(err as Error).message}`);
      }
      this.emit("data", decoded);
    }
  }

  private onEnd() {
    if (this.destroyed || !this.trailers) return; // no trailers: 'close' says why
    if (this.reader.partialBytes > 0) {
      return this.cancelWith(status.INTERNAL, "The server ended the call in the middle of a message");
    }
    this.finish(this.trailers, true);
  }

  private onClose() {
    if (this.destroyed) return;
    if (this.trailers) return this.finish(this.trailers, true); // reset after its status: the status stands
    const dropped = this.session?.destroyed ?? false;
    this.finish(resetStatus(this.stream?.rstCode ?? 0, { connectionDropped: dropped, error: this.streamError }));
  }

  /** Ends the call with `s` (once); `serverEnded`: the server closed its side with a status. */
  private finish(s: StatusObject, serverEnded = false): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.deadline);
    this.queued = [];
    const stream = this.stream;
    if (stream && !stream.destroyed) {
      // After the server's status our half-close completes the stream; otherwise a reset tells
      // the server we are gone (CANCEL: a deadline, a cancel, a bad response).
      if (serverEnded) {
        stream.end();
        stream.resume(); // drops what a paused reader left unread, so that the stream can close
      } else stream.close(s.code === status.OK ? constants.NGHTTP2_NO_ERROR : constants.NGHTTP2_CANCEL);
    }
    if (s.code !== status.OK) this.emit("error", statusError(s));
    this.emit("status", s);
    this.emit("end");
  }
}
