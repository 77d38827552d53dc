// One HTTP/2 session per relay, shared by every call to it (each tunnelled connection is a stream
// with its own window). Made on first use and made again by the first call after it dies; a call
// in flight on a dying session fails UNAVAILABLE, as grpc-js's would. Keepalive pings, windows and
// the connect timeout follow runtime/grpc-options.ts, so both stacks behave alike.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import type { TLSSocket } from "node:tls";
import { flowControlWindowBytes, type KeepaliveOptions } from "../runtime/grpc-options.ts";
import { type DialOptions, dialRelay } from "./relay-dial.ts";

export interface H2ChannelOptions extends DialOptions {
  keepalive: KeepaliveOptions;
}

/** Why no session could be made, in grpc-js's words (call-error.ts reads the cause after "Last error:"). */
export class NoConnection extends Error {
  readonly lastError: Error;

  constructor(lastError: Error) {
    super(`No connection established. Last error: ${String(lastError)}`);
    this.lastError = lastError;
  }
}

export class H2Channel {
  private readonly o: H2ChannelOptions;
  private current: Promise<ClientHttp2Session> | undefined;
  /** The session `current` resolved to: one found dead is replaced before its 'close' is emitted. */
  private live: ClientHttp2Session | undefined;
  private closed = false;
  /** Open streams per session: a session with none is unref'd so that it never holds the process. */
  private readonly streams = new WeakMap<ClientHttp2Session, number>();

  constructor(o: H2ChannelOptions) {
    this.o = o;
  }

  /** The live session, or the one being made; rejects with NoConnection when it cannot be made. */
  session(): Promise<ClientHttp2Session> {
    if (this.closed) return Promise.reject(new NoConnection(new Error("the relay client was closed")));
    if (this.live && (this.live.closed || this.live.destroyed)) {
      this.live = undefined;
      this.current = undefined;
    }
    if (!this.current) {
      const made = this.open(() => {
        if (this.current === made) this.current = undefined;
      });
      this.current = made;
    }
    return this.current;
  }

  /** Counts a stream of `session` as open until it closes. */
  track(session: ClientHttp2Session, stream: ClientHttp2Stream): void {
    const n = (this.streams.get(session) ?? 0) + 1;
    this.streams.set(session, n);
    if (n === 1) session.ref();
    stream.once("close", () => {
      const left = (this.streams.get(session) ?? 1) - 1;
      this.streams.set(session, left);
      if (left === 0 && !session.destroyed) session.unref();
    });
  }

  /** No new calls; open ones finish on their session, which then closes. */
  close(): void {
    this.closed = true;
    this.current?.then(
      (s) => s.close(),
      () => {},
    );
    this.current = undefined;
  }

  /** Dials and sets up a session; `forget` runs once it can take no new calls. */
  private async open(forget: () => void): Promise<ClientHttp2Session> {
    let socket: TLSSocket;
    try {
      socket = await dialRelay(this.o);
    } catch (err) {
      forget();
      throw new NoConnection(err as Error);
    }
    const session = http2.connect(`https://${this.o.address}`, {
      createConnection: () => socket,
      settings: { initialWindowSize: flowControlWindowBytes, enablePush: false },
      // As grpc-js sets it: the windows bound what a session holds, not this cap on nghttp2's memory.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    // A GOAWAY lets open calls finish but takes no new ones: the next call makes a new session.
    session.on("goaway", forget);
    session.once("close", forget);
    // Its calls report the loss (each stream is destroyed with the session); nothing else to do.
    session.on("error", () => {});
    session.unref();
    keepalive(session, this.o.keepalive);
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => resolve());
      session.once("close", () => reject(new NoConnection(new Error("the relay closed the connection"))));
    });
    // The session's window, as grpc-js sets it from the same option: one stream's window, not the
    // relay's 32 MiB. Node stops reading a session's socket while a write to it is in progress,
    // so two peers that may both have megabytes in flight can each wait for the other to read:
    // 200 echoing streams deadlocked so. A small window here keeps one direction within what
    // the kernel's socket buffers take.
    session.setLocalWindowSize(flowControlWindowBytes);
    if (this.closed) session.close();
    this.live = session;
    return session;
  }
}

/**
 * An HTTP/2 PING every `timeMs`; one unanswered for `timeoutMs` ends the session, so that a relay
 * gone silent (a dead link, a host that vanished) fails its calls instead of hanging them.
 */
function keepalive(session: ClientHttp2Session, o: KeepaliveOptions): void {
  let timer: NodeJS.Timeout | undefined;
  const next = () => {
    timer = setTimeout(ping, o.timeMs).unref();
  };
  const ping = () => {
    if (session.destroyed) return;
    const deadline = setTimeout(
      () => session.destroy(new Error(`keepalive ping not answered within ${o.timeoutMs} ms`)),
      o.timeoutMs,
    ).unref();
    const sent = session.ping((err) => {
      clearTimeout(deadline);
      if (!err) next();
    });
    if (!sent) {
      clearTimeout(deadline);
      next();
    }
  };
  session.once("connect", next);
  session.once("close", () => clearTimeout(timer));
}
