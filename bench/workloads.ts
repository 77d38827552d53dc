// What the driver does over a path, against the bench target (bench/target.ts): each workload
// takes only a port, so the tunnel and every baseline are measured the same way.
import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { dial, firstByte, readAll } from "./net.ts";
import { patternAt, patternSha256 } from "./pattern.ts";

const chunkBytes = 256 * 1024;

/** Resolves at 'drain' or 'close', leaving no listener behind (a GiB is thousands of waits). */
function drainOrClose(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off("drain", done).off("close", done);
      resolve();
    };
    s.on("drain", done).on("close", done);
  });
}

async function writeAll(s: Socket, bytes: number): Promise<void> {
  for (let sent = 0; sent < bytes; ) {
    const part = patternAt(sent, Math.min(chunkBytes, bytes - sent));
    sent += part.length;
    if (!s.write(part)) await drainOrClose(s);
    // Closed under us (the reply's deadline or a reset): the reply reports why.
    if (s.destroyed) return;
  }
  s.end();
}

/**
 * Sends `bytes` of the pattern to the target; with `hash` the target answers the SHA-256 of what
 * it got and it must match. Returns bits per second, timed from connect to the target's answer.
 */
export async function upload(port: number, bytes: number, hash: boolean, timeoutMs: number): Promise<number> {
  const expected = hash ? patternSha256(bytes) : "";
  const started = process.hrtime.bigint();
  const s = await dial(port);
  s.write(hash ? "U" : "C");
  const reply = readAll(s, timeoutMs);
  // Handled below, after the writes; this only keeps an early failure from counting as unhandled.
  reply.catch(() => {});
  await writeAll(s, bytes);
  const [count, sha] = (await reply).trim().split(" ");
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  s.destroy();
  if (Number(count) !== bytes) throw new Error(`the target counted ${count} bytes of ${bytes}`);
  if (hash && sha !== expected) throw new Error(`SHA-256 mismatch after ${bytes} bytes: ${sha} ≠ ${expected}`);
  return (bytes * 8) / seconds;
}

/** Has the target send `bytes` of the pattern; counts and hashes them here. Returns bits per second. */
export async function download(port: number, bytes: number, timeoutMs: number): Promise<number> {
  const expected = patternSha256(bytes);
  const started = process.hrtime.bigint();
  const s = await dial(port);
  const header = Buffer.alloc(9);
  header[0] = 0x44;
  header.writeBigUInt64BE(BigInt(bytes), 1);
  s.write(header);
  const hash = createHash("sha256");
  const got = await new Promise<number>((resolve, reject) => {
    let n = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`download stalled at ${n} of ${bytes} bytes`));
    }, timeoutMs);
    s.on("data", (c: Buffer) => {
      n += c.length;
      hash.update(c);
    });
    s.once("end", () => {
      clearTimeout(timer);
      resolve(n);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  s.destroy();
  const sha = hash.digest("hex");
  if (got !== bytes) throw new Error(`received ${got} bytes of ${bytes}`);
  if (sha !== expected) throw new Error(`SHA-256 mismatch after ${bytes} bytes`);
  return (bytes * 8) / seconds;
}

/** `n` uploads at once (count-checked); returns the aggregate bits per second. */
export async function parallelUpload(port: number, n: number, bytesEach: number, timeoutMs: number): Promise<number> {
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: n }, () => upload(port, bytesEach, false, timeoutMs)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return (n * bytesEach * 8) / seconds;
}

/** Sequential 64-byte ping-pongs through the echo; returns sorted round-trip times in µs. */
export async function roundTrips(port: number, count: number, warmup: number, timeoutMs: number): Promise<number[]> {
  const s = await dial(port);
  s.write("E");
  const ping = Buffer.alloc(64, 0x61);
  const times: number[] = [];
  let pending: (() => void) | undefined;
  let got = 0;
  s.on("data", (c: Buffer) => {
    got += c.length;
    if (got >= 64 && pending) {
      got -= 64;
      const p = pending;
      pending = undefined;
      p();
    }
  });
  const deadline = Date.now() + timeoutMs;
  try {
    for (let i = 0; i < warmup + count; i++) {
      if (Date.now() > deadline) throw new Error(`round trips took longer than ${timeoutMs} ms (${i} done)`);
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        pending = resolve;
        s.once("error", reject);
        s.write(ping);
      });
      s.removeAllListeners("error");
      if (i >= warmup) times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  } finally {
    s.destroy();
  }
  return times.sort((a, b) => a - b);
}

/** Opens a connection and waits for the target's first byte; returns the time in µs. */
export async function setupOnce(port: number, timeoutMs: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const s = await dial(port, timeoutMs);
  try {
    await firstByte(s, timeoutMs);
    return Number(process.hrtime.bigint() - t0) / 1000;
  } finally {
    s.destroy();
  }
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
