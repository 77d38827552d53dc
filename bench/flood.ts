// `npm run flood`: floods the relay's gRPC port while a legitimate stream moves SHA-256-checked
// bytes through it, and reports per scenario the legitimate stream's throughput and ping p99,
// each process's peak RSS against its Pod limit, and what the relay's caps refused.
//   --smoke    small floods, short scenarios and short deadlines (CI: well under a minute)
//   --out F    also write the results table (markdown) to F
// Fails (exit 1) when a transfer fails or its hash differs, the device re-attaches, or a process
// goes over its Pod limit. Timing figures are reported, never asserted: the machine is shared.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type DataPlane, startDataPlane } from "../test/helpers/dataplane.ts";
import { countMatches, metric } from "../test/helpers/robustness.ts";
import { echoServer } from "../test/helpers/tcp-targets.ts";
import type { AttackKind, AttackReport } from "./flood/attack.ts";
import { samplePeaks, startAttack, versus } from "./flood/launch.ts";
import { Pinger, percentile, type TransferResult, transfer } from "./flood/legit.ts";
import { loadAverage, raiseFdLimit } from "./procs.ts";

const { values: a } = parseArgs({
  options: { smoke: { type: "boolean", default: false }, out: { type: "string" } },
});
const smoke = a.smoke;
const MiB = 1024 * 1024;
/** The relay's and the agent's Pod memory limits (charts/devicestreams, charts/devicestreams-agent). */
const podLimitKiB = { relay: 256 * 1024, agent: 256 * 1024 };
// Smoke: 2 MiB, so that CI on a busy machine still ends in well under a minute.
const transferBytes = (smoke ? 2 : 10) * MiB;

interface Scenario {
  name: string;
  kind?: AttackKind;
  count: number;
  sources: number;
  durationMs: number;
}
const s = (full: number, small: number) => (smoke ? small : full);
const scenarios: Scenario[] = [
  { name: "no flood (baseline)", count: 0, sources: 0, durationMs: s(20_000, 1_000) },
  {
    name: `${s(5000, 300)} half-open TCP connections held ${s(60, 3)} s`,
    kind: "half-open",
    count: s(5000, 300),
    sources: s(50, 3),
    durationMs: s(60_000, 3_000),
  },
  {
    name: `${s(2000, 200)} TLS handshakes that never finish`,
    kind: "handshake",
    count: s(2000, 200),
    sources: s(20, 2),
    durationMs: s(60_000, 3_000),
  },
  {
    name: `${s(1000, 50)} authenticated sessions opening streams as fast as they can`,
    kind: "streams",
    count: s(1000, 50),
    sources: s(20, 2),
    durationMs: s(60_000, 3_000),
  },
  {
    name: `${s(200, 20)} sessions sending oversized and malformed metadata`,
    kind: "metadata",
    count: s(200, 20),
    sources: s(4, 1),
    durationMs: s(60_000, 3_000),
  },
];

const reasons = ["max_connections", "max_per_source", "handshake_timeout", "unauthenticated_timeout"] as const;
const refusedMetric = "devicestreams_relay_grpc_connections_refused_total";

interface Result {
  scenario: Scenario;
  transfers: TransferResult[];
  mibPerSecond: number;
  p50: number;
  p99: number;
  pingFailures: number;
  peakKiB: Record<string, number>;
  refused: Record<(typeof reasons)[number], number>;
  attack?: AttackReport;
}

async function refusals(plane: DataPlane): Promise<Record<(typeof reasons)[number], number>> {
  const out = {} as Record<(typeof reasons)[number], number>;
  for (const r of reasons) out[r] = (await metric(plane.relay.metricsPort, refusedMetric, `reason="${r}"`)) ?? 0;
  return out;
}

async function run(plane: DataPlane, pinger: Pinger, sc: Scenario): Promise<Result> {
  const before = await refusals(plane);
  const flood = sc.kind
    ? startAttack({
        kind: sc.kind,
        port: Number(plane.relay.address.split(":")[1]),
        count: sc.count,
        sources: sc.sources,
        durationMs: sc.durationMs,
        ca: plane.stream.ca.certPem,
        token: plane.stream.sourceToken,
        path: "/devicestreams.v1alpha1.Relay/Connect",
      })
    : undefined;
  const peaks = samplePeaks(() => ({
    relay: plane.relay.process.proc.pid,
    agent: plane.agent.process.proc.pid,
    client: plane.client.process.proc.pid,
  }));
  pinger.take();
  const transfers: TransferResult[] = [];
  const end = Date.now() + sc.durationMs;
  do transfers.push(await transfer(plane.client.port, transferBytes));
  while (Date.now() < end);
  const report = await flood?.report;
  // Settle: the relay lets go of what the attacker left (so the next scenario's counts are its own).
  const settleUntil = Date.now() + 30_000;
  while (Date.now() < settleUntil) {
    const open = await metric(plane.relay.metricsPort, "devicestreams_relay_grpc_connections_open");
    if (open !== undefined && open <= 2) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const peakKiB = peaks.stop();
  const rtt = pinger.take();
  const after = await refusals(plane);
  const refused = Object.fromEntries(reasons.map((r) => [r, after[r] - before[r]])) as Result["refused"];
  const ok = transfers.filter((t) => !t.error);
  const seconds = ok.reduce((n, t) => n + t.seconds, 0);
  return {
    scenario: sc,
    transfers,
    mibPerSecond: ok.length ? ok.reduce((n, t) => n + t.bytes, 0) / MiB / seconds : 0,
    p50: percentile(rtt, 50),
    p99: percentile(rtt, 99),
    pingFailures: pinger.failures,
    peakKiB,
    refused,
    ...(report ? { attack: report } : {}),
  };
}

function table(results: Result[]): string {
  const rows = [
    `| scenario | transfers (${transferBytes / MiB} MiB, hash ok) | legit MiB/s | ping p50 / p99 ms | relay peak RSS (limit 256 MiB) | agent peak RSS (limit 256 MiB) | client peak RSS | refused by the relay |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of results) {
    const ok = r.transfers.filter((t) => !t.error).length;
    const refused =
      reasons
        .filter((x) => r.refused[x])
        .map((x) => `${x} ${r.refused[x]}`)
        .join(", ") || "none";
    const attack = r.attack
      ? ` (attacker: ${r.attack.opened} opened, ${r.attack.closedByServer} closed by the relay${r.attack.calls ? `, ${r.attack.calls} calls` : ""})`
      : "";
    rows.push(
      `| ${r.scenario.name} | ${ok} of ${r.transfers.length} | ${r.mibPerSecond.toFixed(1)} | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} | ${versus(r.peakKiB.relay)} | ${versus(r.peakKiB.agent)} | ${versus(r.peakKiB.client)} | ${refused}${attack} |`,
    );
  }
  return `${rows.join("\n")}\n`;
}

const fds = raiseFdLimit();
const echo = await echoServer();
const relayArgs = smoke ? ["--handshake-timeout=1s", "--unauthenticated-timeout=2s"] : [];
const plane = await startDataPlane({ service: "echo", allow: [`echo=${echo.address}`], relayArgs });
const pinger = new Pinger(plane.client.port);
const results: Result[] = [];
const failures: string[] = [];
try {
  for (const sc of scenarios) {
    process.stderr.write(`flood: ${sc.name}...\n`);
    const r = await run(plane, pinger, sc);
    results.push(r);
    for (const t of r.transfers) if (t.error) failures.push(`${sc.name}: a transfer failed: ${t.error}`);
    for (const p of ["relay", "agent"] as const) {
      if ((r.peakKiB[p] ?? 0) >= podLimitKiB[p]) failures.push(`${sc.name}: the ${p} reached ${versus(r.peakKiB[p])}`);
    }
  }
  if (countMatches(plane.agent.process, /attached to relay/) !== 1) failures.push("the agent had to attach again");
  if (plane.relay.process.proc.exitCode !== null) failures.push("the relay exited");
} finally {
  await pinger.stop();
  await plane.stop();
  await echo.close();
}
const head = `${smoke ? "Smoke run" : "Full run"}: node ${process.version}, fd limit ${fds}, load ${loadAverage()}.\n\n`;
const out = head + table(results);
process.stdout.write(out);
if (a.out) writeFileSync(a.out, out);
if (failures.length) {
  process.stderr.write(`flood: FAILED\n${failures.join("\n")}\n`);
  process.exit(1);
}
process.stderr.write("flood: every transfer completed with the right hash; every process stayed under its limit\n");
