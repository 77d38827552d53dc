// One flood, run in a child process of bench/flood.ts so that the attacker's own CPU use does not
// slow the legitimate stream's measurement in the parent. Keeps `count` attackers going from
// `sources` loopback addresses for `durationMs`, reopening each one the server closes (a flood
// that gives up after the first refusal proves nothing), then reports what happened over IPC.
import type { ClientHttp2Session } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { h2Session, loopback, silentTcp, stalledHandshake } from "../../test/helpers/raw-peers.ts";

export type AttackKind = "half-open" | "handshake" | "streams" | "metadata";

export interface AttackOptions {
  kind: AttackKind;
  port: number;
  count: number;
  sources: number;
  durationMs: number;
  /** The relay's CA (PEM) and the source credential, for the kinds that get past TLS. */
  ca: string;
  token: string;
  path: string;
}

export interface AttackReport {
  kind: AttackKind;
  /** Connections opened (each reopening counts). */
  opened: number;
  /** Connections the server closed before the attacker let go. */
  closedByServer: number;
  /** Calls started (streams, metadata). */
  calls: number;
  peakOpen: number;
}

const o = JSON.parse(process.argv[2]!) as AttackOptions;
const deadline = Date.now() + o.durationMs;
const report: AttackReport = { kind: o.kind, opened: 0, closedByServer: 0, calls: 0, peakOpen: 0 };
let open = 0;
const live = new Set<{ destroy(): void }>();
const source = (i: number) => loopback(20, i % o.sources);

/** An attacker that holds a TCP or TLS connection open until the server lets go, then comes back. */
async function holder(i: number, connect: typeof silentTcp): Promise<void> {
  while (Date.now() < deadline) {
    const w = await connect(o.port, source(i)).catch(() => undefined);
    if (!w) {
      await sleep(50);
      continue;
    }
    report.opened++;
    report.peakOpen = Math.max(report.peakOpen, ++open);
    live.add(w.socket);
    const ended = await Promise.race([w.closed.then(() => true), sleep(Math.max(0, deadline - Date.now()), false)]);
    open--;
    live.delete(w.socket);
    if (ended) report.closedByServer++;
    // A refused attacker comes straight back, but not in a busy loop.
    await sleep(20);
  }
}

const grpcHeaders = (extra: Record<string, string>) => ({
  ":method": "POST",
  ":path": o.path,
  "content-type": "application/grpc",
  te: "trailers",
  ...extra,
});

/** Opens one stream and lets it go as soon as the server answers (or after 200 ms). */
async function burst(session: ClientHttp2Session, headers: Record<string, string>): Promise<void> {
  const req = session.request(grpcHeaders(headers));
  req.on("error", () => {});
  report.calls++;
  await Promise.race([new Promise((r) => req.once("response", r).once("close", r)), sleep(200)]);
  req.close();
}

const metadataAbuse: Array<Record<string, string>> = [
  { authorization: `Bearer ${"x".repeat(60_000)}` }, // oversized, just under Node's 64 KiB header list
  { "x-devicestreams-connection-id": "-1", authorization: "Bearer \u0001\u0002" },
  { "grpc-timeout": "99999999999999H", authorization: "Bearer" },
  { "trace-bin": "!!!not base64!!!", authorization: "Basic Zm9vOmJhcg==" },
];

/** An HTTP/2 session that opens streams as fast as the server takes them, reconnecting when cut. */
async function streamer(i: number, headersOf: (n: number) => Record<string, string>): Promise<void> {
  while (Date.now() < deadline) {
    const s = await h2Session(o.port, o.ca, source(i)).catch(() => undefined);
    if (!s || s.session.destroyed || s.session.closed) {
      await sleep(50);
      continue;
    }
    report.opened++;
    report.peakOpen = Math.max(report.peakOpen, ++open);
    live.add(s.session);
    let closed = false;
    void s.closed.then(() => {
      closed = true;
    });
    let n = 0;
    while (!closed && Date.now() < deadline) {
      try {
        await burst(s.session, headersOf(n++));
      } catch {
        break;
      }
    }
    open--;
    live.delete(s.session);
    if (closed || s.session.destroyed) report.closedByServer++;
    s.session.destroy();
    await sleep(20);
  }
}

const attackers: Array<(i: number) => Promise<void>> = [];
switch (o.kind) {
  case "half-open":
    attackers.push((i) => holder(i, silentTcp));
    break;
  case "handshake":
    attackers.push((i) => holder(i, stalledHandshake));
    break;
  case "streams":
    attackers.push((i) => streamer(i, () => ({ authorization: `Bearer ${o.token}` })));
    break;
  case "metadata":
    attackers.push((i) => streamer(i, (n) => metadataAbuse[n % metadataAbuse.length]!));
    break;
}
// Ramp up in slices, as a real flood from many hosts arrives, not in one synchronous burst.
const runs: Promise<void>[] = [];
for (let i = 0; i < o.count; i++) {
  runs.push(attackers[0]!(i));
  if (i % 100 === 99) await sleep(10);
}
// Past its duration an attacker may still wait on a socket the server never answers: report then anyway.
const finished = Promise.all(runs);
await Promise.race([finished, sleep(o.durationMs + 10_000)]);
for (const s of live) s.destroy();
process.send?.(report, () => process.exit(0));
