// A plain TCP client for tests: connect, write, half-close, collect, with deadlines.
import { connect, type Socket } from "node:net";
import { forgetStopped, stopAfterTest } from "./cleanup.ts";

/**
 * A connection to host:port, destroyed after the test that opened it if it is still open then
 * (a paused or half-open socket of a failed test would keep the run from ending).
 */
export function dial(port: number, host = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host, allowHalfOpen: true });
    const handle = stopAfterTest({ stop: () => s.destroy() });
    s.once("close", () => forgetStopped(handle));
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

export interface Outcome {
  data: Buffer;
  /** The peer closed cleanly (FIN) rather than resetting. */
  ended: boolean;
  error?: NodeJS.ErrnoException;
}

/** Collects everything until the socket closes, or fails after the deadline (a hang is a failure). */
export function collect(socket: Socket, timeoutMs = 30_000): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    let error: NodeJS.ErrnoException | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `the connection did not finish within ${timeoutMs} ms (received ${Buffer.concat(chunks).length} bytes)`,
        ),
      );
    }, timeoutMs);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("end", () => {
      ended = true;
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error = e;
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ended, ...(error ? { error } : {}) });
    });
  });
}

/** Writes all of `payload`, then half-closes; resolves with what came back. */
export async function roundTrip(port: number, payload: Buffer, timeoutMs?: number): Promise<Outcome> {
  const s = await dial(port);
  const done = collect(s, timeoutMs);
  s.end(payload);
  return done;
}
