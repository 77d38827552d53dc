// `npm run flood:hub`: floods an operator replica's hub port (a real kube-apiserver, the operator
// as a process) while an enrolled agent holds its control session, and a legitimate newcomer
// opens a fresh TLS connection and asks the hub something every 100 ms. Reports per scenario the
// newcomer's answers and p99, the operator's peak RSS against its Pod limit, and the refusals.
//   --smoke    small floods and short scenarios
//   --out F    also write the results table (markdown) to F
// Fails (exit 1) when the agent's session is cut or the operator goes over its Pod limit.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { defaultKeepalive } from "../runtime/grpc-options.ts";
import { startHubAgent } from "../test/helpers/hub-agent.ts";
import { System } from "../test/helpers/system.ts";
import { HubClient } from "../transport/hub-client.ts";
import type { AttackKind, AttackReport } from "./flood/attack.ts";
import { samplePeaks, startAttack, versus } from "./flood/launch.ts";
import { percentile } from "./flood/legit.ts";
import { loadAverage, raiseFdLimit } from "./procs.ts";

const { values: a } = parseArgs({
  options: { smoke: { type: "boolean", default: false }, out: { type: "string" } },
});
const smoke = a.smoke;
const s = (full: number, small: number) => (smoke ? small : full);
/** charts/devicestreams values.yaml: the operator's memory limit. */
const operatorLimitMiB = 512;

interface Scenario {
  name: string;
  kind?: AttackKind;
  count: number;
  sources: number;
  durationMs: number;
  path?: string;
}
const scenarios: Scenario[] = [
  { name: "no flood (baseline)", count: 0, sources: 0, durationMs: s(20_000, 2_000) },
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
    name: `${s(1000, 50)} sessions without a certificate opening Session calls as fast as they can`,
    kind: "streams",
    count: s(1000, 50),
    sources: s(20, 2),
    durationMs: s(60_000, 3_000),
    path: "/devicestreams.v1alpha1.Hub/Session",
  },
  {
    name: `${s(200, 20)} sessions sending oversized and malformed metadata`,
    kind: "metadata",
    count: s(200, 20),
    sources: s(4, 1),
    durationMs: s(60_000, 3_000),
    path: "/devicestreams.v1alpha1.Hub/Enroll",
  },
];
const reasons = ["max_connections", "max_per_source", "handshake_timeout", "unauthenticated_timeout"] as const;

async function counter(port: number, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `) || l.startsWith(`${name} `));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/**
 * A legitimate newcomer: a fresh channel (TCP, TLS) and one Enroll with an empty request every
 * 100 ms. The hub answers it (INVALID_ARGUMENT or RESOURCE_EXHAUSTED) without any API call, so its
 * time is the hub's admission and TLS under the flood.
 */
async function newcomer(port: number, caPem: string, untilMs: number) {
  const rtt: number[] = [];
  let unanswered = 0;
  while (Date.now() < untilMs) {
    const client = new HubClient({ address: `127.0.0.1:${port}`, tls: { caPem }, keepalive: defaultKeepalive });
    const at = performance.now();
    const code = await client.enroll({}, 10_000).then(
      () => grpcStatus.OK,
      (e: ServiceError) => e.code,
    );
    if (code === grpcStatus.UNAVAILABLE || code === grpcStatus.DEADLINE_EXCEEDED || code === grpcStatus.CANCELLED) {
      unanswered++;
    } else rtt.push(performance.now() - at);
    client.close();
    await new Promise((r) => setTimeout(r, 100));
  }
  return { rtt, unanswered };
}

const fds = raiseFdLimit();
// Smoke: deadlines shorter than its scenarios, so that they are exercised too.
const deadlines = smoke ? ["--hub-handshake-timeout=1s", "--hub-unauthenticated-timeout=2s"] : [];
const sys = await System.start({ namespace: "flood", operatorArgs: ["--hub-enroll-burst=1000000", ...deadlines] });
const failures: string[] = [];
const rows: string[] = [
  `| scenario | newcomer answered | newcomer p50 / p99 ms | operator peak RSS (limit ${operatorLimitMiB} MiB) | refused by the hub |`,
  "| --- | --- | --- | --- | --- |",
];
try {
  const op = sys.operators[0]!;
  const agent = await startHubAgent(sys, { namespace: "flood", device: "pump", allow: ["ssh=127.0.0.1:22"] });
  const caPem = readFileSync(join(sys.env.cluster.dataDir, "agent-pump", "hub-ca.crt"), "utf8");
  for (const sc of scenarios) {
    process.stderr.write(`flood-hub: ${sc.name}...\n`);
    const before = await Promise.all(
      reasons.map((r) => counter(op.metricsPort, "devicestreams_hub_grpc_connections_refused_total", `reason="${r}"`)),
    );
    const peaks = samplePeaks(() => ({ operator: op.process.child.pid }));
    const flood = sc.kind
      ? startAttack({
          kind: sc.kind,
          port: op.hubPort!,
          count: sc.count,
          sources: sc.sources,
          durationMs: sc.durationMs,
          ca: caPem,
          token: "",
          path: sc.path ?? "",
        })
      : undefined;
    const legit = await newcomer(op.hubPort!, caPem, Date.now() + sc.durationMs);
    const report: AttackReport | undefined = await flood?.report;
    const peak = peaks.stop();
    const after = await Promise.all(
      reasons.map((r) => counter(op.metricsPort, "devicestreams_hub_grpc_connections_refused_total", `reason="${r}"`)),
    );
    const refused =
      reasons
        .map((r, i) => [r, after[i]! - before[i]!] as const)
        .filter(([, n]) => n)
        .map(([r, n]) => `${r} ${n}`)
        .join(", ") || "none";
    const attack = report
      ? ` (attacker: ${report.opened} opened, ${report.closedByServer} closed by the hub${report.calls ? `, ${report.calls} calls` : ""})`
      : "";
    const answered = legit.rtt.length;
    rows.push(
      `| ${sc.name} | ${answered} of ${answered + legit.unanswered} | ${percentile(legit.rtt, 50).toFixed(1)} / ${percentile(legit.rtt, 99).toFixed(1)} | ${versus(peak.operator)} | ${refused}${attack} |`,
    );
    if ((peak.operator ?? 0) >= operatorLimitMiB * 1024)
      failures.push(`${sc.name}: the operator reached ${versus(peak.operator)}`);
  }
  const opened = [...(agent.agent?.logs ?? "").matchAll(/control session with the hub is open/g)].length;
  if (opened !== 1) {
    const said = (agent.agent?.logs ?? "").split("\n").filter((l) => / (WARN|ERROR) /.test(l));
    failures.push(`the agent opened its control session ${opened} times, not once:\n${said.slice(-8).join("\n")}`);
  }
  await agent.stop();
} finally {
  await sys.stop();
}
const out = `${smoke ? "Smoke run" : "Full run"}: node ${process.version}, fd limit ${fds}, load ${loadAverage()}.\n\n${rows.join("\n")}\n`;
process.stdout.write(out);
if (a.out) writeFileSync(a.out, out);
if (failures.length) {
  process.stderr.write(`flood-hub: FAILED\n${failures.join("\n")}\n`);
  process.exit(1);
}
process.stderr.write("flood-hub: the agent's session held throughout; the operator stayed under its limit\n");
