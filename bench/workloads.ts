// Workloads measured against any TCP endpoint (direct, or a tunnel's local port), so every
// figure has a baseline taken the same way in the same run.
import { connect, createServer, type Server, type Socket } from "node:net";

/** A server that swallows bytes and, at the client's FIN, answers with the count as text. */
export async function startSink(): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on("data", (c: Buffer) => {
      n += c.length;
    });
    s.on("end", () => s.end(String(n)));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as { port: number }).port };
}

/** A server that echoes each read straight back (the round-trip peer). */
export async function startEcho(): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.pipe(s);
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as { port: number }).port };
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Sends `bytes` on one connection and waits for the sink's count; returns bits per second. */
export async function throughput(port: number, bytes: number): Promise<number> {
  const s = await dial(port);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const started = process.hrtime.bigint();
  const reply = new Promise<string>((resolve, reject) => {
    let text = "";
    s.on("data", (c: Buffer) => {
      text += c.toString();
    });
    s.on("end", () => resolve(text));
    s.on("error", reject);
  });
  let sent = 0;
  while (sent < bytes) {
    const n = Math.min(chunk.length, bytes - sent);
    sent += n;
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await new Promise((r) => s.once("drain", r));
  }
  s.end();
  const counted = Number(await reply);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  s.destroy();
  if (counted !== bytes) throw new Error(`the sink counted ${counted} bytes of ${bytes}`);
  return (bytes * 8) / seconds;
}

/** Sequential 64-byte ping-pongs on one connection; returns sorted round-trip times in µs. */
export async function roundTrips(port: number, count: number, warmup = 200): Promise<number[]> {
  const s = await dial(port);
  const ping = Buffer.alloc(64, 0x61);
  const times: number[] = [];
  let pending: ((c: Buffer) => void) | undefined;
  let got = 0;
  s.on("data", (c: Buffer) => {
    got += c.length;
    if (got >= 64 && pending) {
      got -= 64;
      const p = pending;
      pending = undefined;
      p(c);
    }
  });
  for (let i = 0; i < warmup + count; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<Buffer>((resolve) => {
      pending = resolve;
      s.write(ping);
    });
    if (i >= warmup) times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  s.destroy();
  return times.sort((a, b) => a - b);
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
