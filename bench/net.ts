// Connecting on loopback, with a deadline, for the driver and for waiting on forwarders.
import { connect, type Socket } from "node:net";

/**
 * Bytes every connection to a port starts with, written before the workload's own: the gateway
 * path's TLS ClientHello (the gateway routes by it and replays it; the target skips it). Keyed by
 * port so that every workload, which takes only a port, runs over the gateway unchanged.
 */
const preambles = new Map<number, Buffer>();
export function setPreamble(port: number, bytes: Buffer | undefined): void {
  if (bytes) preambles.set(port, bytes);
  else preambles.delete(port);
}

export function dial(port: number, timeoutMs = 15_000, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", localAddress, allowHalfOpen: true, noDelay: true });
    const preamble = preambles.get(port);
    if (preamble) s.write(preamble);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to 127.0.0.1:${port} timed out`));
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** True once something accepts a TCP connection on the port (a forwarder is listening). */
export async function accepts(port: number): Promise<boolean> {
  try {
    (await dial(port, 2_000)).destroy();
    return true;
  } catch {
    return false;
  }
}

/** Resolves with everything the peer sends until its FIN; rejects on error or after timeoutMs. */
export function readAll(s: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on("data", (c: Buffer) => {
      text += c.toString();
    });
    s.once("end", () => {
      clearTimeout(timer);
      resolve(text);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Asks the target for an idle connection ('I') and resolves at its first byte; rejects on an
 * error, a close before it, or after timeoutMs. Listeners it added are gone either way.
 */
export function firstByte(s: Socket, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      s.off("data", onData).off("error", done).off("end", onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onData = () => done();
    const onEnd = () => done(new Error("closed before the first byte"));
    const timer = setTimeout(() => done(new Error("no first byte from the target")), timeoutMs);
    s.once("data", onData).once("error", done).once("end", onEnd);
    s.write("I");
  });
}
