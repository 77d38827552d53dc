// One transfer through the tunnel (the fault loops, config reloads): random bytes sent to an echo target at a
// paced rate (so a fault lands mid-transfer), the echo read back to FIN, both ends hashed. A FIN
// is the tunnel's claim that the transfer is complete: then the bytes must match; a reset or
// socket error is a failure reported to the user; nothing at all is a hang.
import { createHash, randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";

export type OutcomeKind = "ok" | "error" | "wrong-bytes" | "hang";

export interface Outcome {
  kind: OutcomeKind;
  /** When the outcome was seen (ms since the epoch). */
  at: number;
  detail: string;
}

export interface Transfer {
  /** Resolves once the transfer ends one way or the other (never for a hang: race it with a deadline). */
  outcome: Promise<Outcome>;
  /** Bytes sent and echoed back so far. */
  progress(): { sent: number; received: number };
  destroy(): void;
}

/** Sends `bytes` random bytes in `chunk`-byte writes, at most `bytesPerSecond`, through 127.0.0.1:port. */
export function echoTransfer(port: number, bytes: number, bytesPerSecond: number, chunk = 32 * 1024): Transfer {
  const data = randomBytes(bytes);
  const want = createHash("sha256").update(data).digest("hex");
  const got = createHash("sha256");
  let sent = 0;
  let received = 0;
  let timer: NodeJS.Timeout | undefined;
  const socket: Socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  const outcome = new Promise<Outcome>((resolve) => {
    const done = (kind: OutcomeKind, detail: string) => {
      clearTimeout(timer);
      resolve({ kind, at: Date.now(), detail });
    };
    socket.on("data", (c: Buffer) => {
      got.update(c);
      received += c.length;
    });
    // The echo target ends only after our FIN: any FIN claims that every byte came back.
    socket.once("end", () => {
      const hash = got.digest("hex");
      if (received === bytes && hash === want) return done("ok", `${bytes} bytes, sha256 ${want.slice(0, 12)}`);
      done(
        "wrong-bytes",
        `FIN after ${received} of ${bytes} bytes; sha256 ${hash.slice(0, 12)} != ${want.slice(0, 12)}`,
      );
    });
    socket.once("error", (e: NodeJS.ErrnoException) =>
      done("error", `${e.code ?? e.message} after ${received} of ${bytes} bytes echoed`),
    );
    socket.once("close", () => done("error", `closed without FIN after ${received} of ${bytes} bytes echoed`));
  });
  // Paced writes: one chunk per tick of chunk/rate seconds, waiting for 'drain' when the tunnel pushes back.
  const tickMs = (chunk / bytesPerSecond) * 1000;
  const next = () => {
    if (socket.destroyed) return;
    if (sent >= bytes) {
      socket.end();
      return;
    }
    const c = data.subarray(sent, Math.min(bytes, sent + chunk));
    sent += c.length;
    if (socket.write(c)) timer = setTimeout(next, tickMs);
    else socket.once("drain", () => (timer = setTimeout(next, tickMs)));
  };
  socket.once("connect", next);
  return {
    outcome,
    progress: () => ({ sent, received }),
    destroy: () => {
      clearTimeout(timer);
      socket.destroy();
    },
  };
}
