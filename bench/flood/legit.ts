// The legitimate stream during a flood: SHA-256-checked transfers of random bytes through the
// tunnel to an echo target, one after the other, and a ping on a held connection for latency.
import { createHash, randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface TransferResult {
  bytes: number;
  seconds: number;
  /** Undefined when the echo came back whole and its hash matched. */
  error?: string;
}

const sha256 = (b: Buffer[]) => {
  const h = createHash("sha256");
  for (const c of b) h.update(c);
  return h.digest("hex");
};

/** Sends `bytes` random bytes through the tunnel and checks the echo's SHA-256. */
export async function transfer(port: number, bytes: number, timeoutMs = 120_000): Promise<TransferResult> {
  const payload = randomBytes(bytes);
  const started = performance.now();
  const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  const back: Buffer[] = [];
  let got = 0;
  const outcome = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => {
      s.destroy();
      resolve(`no complete echo within ${timeoutMs} ms (${got} of ${bytes} bytes)`);
    }, timeoutMs);
    s.on("data", (c: Buffer) => {
      back.push(c);
      got += c.length;
    });
    s.on("error", (e) => resolve(`${e.message} after ${got} of ${bytes} bytes`));
    s.on("close", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    s.once("connect", () => s.end(payload));
  });
  const seconds = (performance.now() - started) / 1000;
  let error = outcome;
  if (!error && got !== bytes) error = `the echo ended after ${got} of ${bytes} bytes`;
  if (!error && sha256(back) !== sha256([payload])) error = "SHA-256 of the echo differs from what was sent";
  return { bytes, seconds, ...(error ? { error } : {}) };
}

/** Round trips of 64 bytes on one held tunnelled connection, every `everyMs`, until stopped. */
export class Pinger {
  readonly rttMs: number[] = [];
  failures = 0;
  private stopped = false;
  private readonly socket: Socket;
  private readonly done: Promise<void>;

  constructor(port: number, everyMs = 20) {
    this.socket = connect({ host: "127.0.0.1", port });
    this.socket.on("error", () => {});
    this.done = this.run(everyMs);
  }

  private async run(everyMs: number): Promise<void> {
    await new Promise((r) => this.socket.once("connect", r));
    const probe = Buffer.alloc(64, 7);
    while (!this.stopped && !this.socket.destroyed) {
      const at = performance.now();
      let got = 0;
      const echoed = new Promise<boolean>((resolve) => {
        const onData = (c: Buffer) => {
          got += c.length;
          if (got >= probe.length) {
            this.socket.off("data", onData);
            resolve(true);
          }
        };
        this.socket.on("data", onData);
        setTimeout(() => {
          this.socket.off("data", onData);
          resolve(false);
        }, 10_000).unref();
      });
      this.socket.write(probe);
      if (await echoed) this.rttMs.push(performance.now() - at);
      else this.failures++;
      await sleep(everyMs);
    }
    if (this.socket.destroyed && !this.stopped) this.failures++;
  }

  /** Takes the samples so far and starts a new window. */
  take(): number[] {
    return this.rttMs.splice(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    this.socket.destroy();
  }
}

export function percentile(samples: number[], p: number): number {
  if (!samples.length) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
