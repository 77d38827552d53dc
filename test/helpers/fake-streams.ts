// In-process stand-ins for a gRPC call and a socket, for the unit tests of the state kept beside
// the byte path (bridge, splice, pairing, hub session). Each is a real Duplex: what is written
// is kept, a test can hold writes so that write() returns false and 'drain' waits for release(),
// and a call's surface is added (cancel(), getPeer(), fail(); grpc-js failures emitted as 'error').
import { Duplex } from "node:stream";
import type { Logger } from "../../runtime/log.ts";

export interface FakeStreamOptions {
  /** Writes buffered before write() returns false; 16 (Node's object-mode default) unless given. */
  highWaterMark?: number;
}

export class FakeStream extends Duplex {
  /** Everything written to it, in order. */
  readonly written: unknown[] = [];
  /** Every 'error' emitted on it: a server call's failure status, or a socket's error. */
  readonly errors: unknown[] = [];
  cancelled = false;
  /** How many times response headers were sent (a server call's sendMetadata). */
  headersSent = 0;
  private holding = false;
  private held: (() => void)[] = [];

  constructor(o: FakeStreamOptions = {}) {
    super({ objectMode: true, highWaterMark: o.highWaterMark ?? 16 });
    this.on("error", (e) => this.errors.push(e));
  }

  override _read(): void {}

  override _write(chunk: unknown, _encoding: BufferEncoding, done: () => void): void {
    this.written.push(chunk);
    if (this.holding) this.held.push(done);
    else done();
  }

  /** From now on writes stay unfinished (the reader is stalled) until release(). */
  hold(): void {
    this.holding = true;
  }

  /** Finishes the held writes ('drain' follows when one had returned false). */
  release(): void {
    this.holding = false;
    for (const done of this.held.splice(0)) done();
  }

  /** The far end sends `chunk` (null: it half-closes). */
  receive(chunk: unknown): void {
    this.push(chunk);
  }

  cancel(): void {
    this.cancelled = true;
  }

  /** A served call's error status (transport/h2-server-call.ts): recorded with the errors. */
  fail(code: number, details: string): void {
    this.errors.push({ code, details });
    if (!this.writableEnded) this.end();
  }

  /** Response headers sent before any message (a served call's sendMetadata). */
  sendMetadata(): void {
    this.headersSent++;
  }

  getPeer(): string {
    return "ipv4:127.0.0.1:1";
  }
}

/** Lets queued stream events (nextTick, setImmediate) run. */
export const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

export const quietLog: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => quietLog,
  enabled: () => false,
};
