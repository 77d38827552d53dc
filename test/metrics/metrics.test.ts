// Metrics as Prometheus sees them: each component's real /metrics (a relay and an agent carrying a
// request, an operator leading on a real API server) passes `promtool check metrics`
// (naming, `_total`, base units, help), carries devicestreams_build_info, uses only bounded label
// names; the README documents exactly the metrics the code registers; and every metric the Grafana
// dashboard queries is one the code exports. Metric names come from the running processes and from
// the source (every `new Counter|Gauge|Histogram|Summary({ name: ... })`), so a metric added later
// (the hub's, say) is checked without editing this test.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hubMetrics } from "../../operator/hub/metrics.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { operatorMetrics } from "../../operator/metrics.ts";
import { createRegistry } from "../../runtime/http-endpoints.ts";
import { clientHello } from "../helpers/client-hello.ts";
import { runCommand } from "../helpers/command.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { type DataPlane, startDataPlane } from "../helpers/dataplane.ts";
import { startGateway } from "../helpers/gateway.ts";
import { type HttpTarget, httpTarget } from "../helpers/http-target.ts";
import { roundTrip } from "../helpers/tcp-client.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv } from "../operator/env.ts";

const root = join(import.meta.dirname, "../..");

/** Labels whose values would be unbounded (one series per object) or secret. */
const forbiddenLabels = new Set([
  "device",
  "stream",
  "name",
  "namespace",
  "service",
  "host",
  "address",
  "target",
  "pod",
  "uid",
  "id",
  "token",
  "user",
  "node",
  "devicestream",
]);

/**
 * Two exceptions. Connections per user, asked for by issue 12 (attribution), whose values the
 * relay caps itself (the first 50 users by name, then `other`; relay/user-access.test.ts checks it).
 */
const cappedLabels = new Map([["devicestreams_relay_user_connections_total", "user"]]);
/**
 * And the operator's per-stream families (operator/stream-metrics.ts), which name the live
 * stream, as kube-state-metrics names Pods, so one stream's phase and bytes can be picked out.
 * They are bounded by the live streams (e2e/dashboard.test.ts shows an ended stream's series go).
 */
const perStreamFile = "operator/stream-metrics.ts";
const perStreamLabels = new Set(["namespace", "devicestream", "device"]);

type MetricType = "Counter" | "Gauge" | "Histogram" | "Summary";
interface SourceMetric {
  name: string;
  type: MetricType;
  labels: string[];
  file: string;
}

/**
 * Product source files as git's index holds them (so another engineer's unfinished, unstaged work
 * does not fail this test on a shared machine; in CI index and files agree), else as on disk.
 */
function sourceTexts(): Array<{ file: string; text: string }> {
  const skip = new Set(["test", "bench", "scripts", "node_modules", "charts", "docs"]);
  const wanted = (f: string) => !skip.has(f.split("/")[0]!) && !f.endsWith(".test.ts") && !f.endsWith(".d.ts");
  try {
    const files = execFileSync("git", ["ls-files", "*.ts"], { cwd: root, encoding: "utf8" }).split("\n");
    return files.filter((f) => f && wanted(f)).map((file) => ({ file, text: git(["show", `:${file}`]) }));
  } catch {
    const files = readdirSync(root, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
    return files.filter(wanted).map((file) => ({ file, text: readFileSync(join(root, file), "utf8") }));
  }
}

function git(args: string[]): string {
  return execFileSync("git", args, { cwd: root, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
}

/** Every metric constructed in product code (not tests, benchmarks or scripts). */
function metricsInSource(): SourceMetric[] {
  const found: SourceMetric[] = [];
  const ctor = /new (Counter|Gauge|Histogram|Summary)\(\s*\{\s*name:\s*["'`](devicestreams_[a-zA-Z0-9_]+)["'`]/g;
  for (const { file, text } of sourceTexts()) {
    for (const m of text.matchAll(ctor)) {
      // The labelNames of this constructor call: up to the call's closing `})`.
      const body = text.slice(m.index, text.indexOf("})", m.index));
      const labels = /labelNames:\s*\[([^\]]*)\]/.exec(body)?.[1] ?? "";
      found.push({
        name: m[2]!,
        type: m[1] as MetricType,
        labels: [...labels.matchAll(/["'`]([^"'`]+)["'`]/g)].map((l) => l[1]!),
        file,
      });
    }
  }
  return found;
}

/** Series and family names in a text exposition (families without samples included). */
function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split("\n")) {
    const family = /^# TYPE (\S+) (\S+)/.exec(line);
    if (family) {
      names.add(family[1]!);
      if (family[2] === "histogram" || family[2] === "summary") {
        for (const s of ["_bucket", "_sum", "_count"]) names.add(family[1]! + s);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (sample) names.add(sample[1]!);
  }
  return names;
}

/** Label names in an exposition, leaving out the samples of `skip` families. */
function labelNamesIn(exposition: string, skip: Set<string> = new Set()): Set<string> {
  const labels = new Set<string>();
  for (const line of exposition.split("\n")) {
    if (line.startsWith("#") || skip.has(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? "")) continue;
    if ([...cappedLabels.keys()].some((name) => line.startsWith(`${name}{`))) continue;
    const braces = /\{([^}]*)\}/.exec(line)?.[1];
    for (const m of braces?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g) ?? []) labels.add(m[1]!);
  }
  return labels;
}

/** Metric names in the README's Metrics table (first column, up to its label list). */
function documentedMetrics(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Metrics"), readme.indexOf("\n## ", readme.indexOf("## Metrics") + 1));
  return [...section.matchAll(/^\| `(devicestreams_[a-zA-Z0-9_]+)[{`]/gm)].map((m) => m[1]!);
}

function dashboardExpressions(): Array<{ panel: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(join(root, "charts/devicestreams/dashboards/devicestreams.json"), "utf8"));
  const out: Array<{ panel: string; expr: string }> = [];
  const walk = (panels: Array<Record<string, unknown>>) => {
    for (const p of panels) {
      for (const t of (p.targets as Array<{ expr?: string }> | undefined) ?? []) {
        if (t.expr) out.push({ panel: String(p.title), expr: t.expr });
      }
      if (Array.isArray(p.panels)) walk(p.panels as Array<Record<string, unknown>>);
    }
  };
  walk(dashboard.panels);
  return out;
}

async function promtool(exposition: string): Promise<{ ok: boolean; output: string }> {
  const r = await runCommand("promtool", ["check", "metrics"], { input: exposition, timeoutMs: 20_000 }).catch(
    (err: Error) => {
      throw new Error(`cannot run promtool (${err.message}): apt-get install prometheus (.ci/run does)`);
    },
  );
  return { ok: r.code === 0, output: `${r.stdout}${r.stderr}` };
}

describe("metrics: promtool, build_info, bounded labels, README and dashboard", function () {
  this.timeout(180_000);
  let target: HttpTarget;
  let plane: DataPlane;
  let env: OperatorEnv | undefined;
  let operator: RunningOperator | undefined;
  let gateway: ComponentProcess | undefined;
  const expositions: Record<"relay" | "agent" | "gateway" | "operator", string> = {
    relay: "",
    agent: "",
    gateway: "",
    operator: "",
  };
  /** The operator's registry with a sample in every labelled family, which a short run may not reach. */
  let operatorFamilies = "";
  const source = metricsInSource();

  before(async () => {
    target = await httpTarget();
    plane = await startDataPlane({ service: "web", allow: [`web=${target.address}`] });
    // One request through the tunnel, so labelled series and histogram buckets have samples.
    const res = await fetch(`http://127.0.0.1:${plane.client.port}/hello?name=metrics`, {
      headers: { connection: "close" },
    });
    assert.equal(await res.text(), "hello metrics\n");
    const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expositions.relay = await scrape(plane.relay.metricsPort);
    expositions.agent = await scrape(plane.agent.metricsPort);
    // A gateway that routed one connection (to the relay) and refused one (no server name).
    const g = await startGateway([`--route=metrics.test=${plane.relay.address}`]);
    gateway = g.process;
    await roundTrip(g.port, clientHello("metrics.test"), 10_000);
    await roundTrip(g.port, clientHello(), 10_000);
    expositions.gateway = await waitFor("the gateway's counts", async () => {
      const text = await scrape(g.metricsPort);
      return /reason="no_server_name"\} 1/.test(text) && /_closed_total\{reason="\w+"\} 1/.test(text) && text;
    });

    // A real operator (with its hub) leading on a real API server, after it reconciled a stream.
    env = await OperatorEnv.start();
    operator = await env.startOperator();
    const ns = await env.namespace("metrics");
    await env.createDevice(ns, "pump-1");
    await env.createStream(ns, "s1", { device: "pump-1", service: "ssh" });
    expositions.operator = await waitFor("a reconcile in the operator's metrics", async () => {
      const text = await scrape(operator!.metricsPort);
      const ready =
        /^devicestreams_operator_reconcile_total\{/m.test(text) &&
        /^devicestreams_operator_stream_phase\{/m.test(text) &&
        /certificate="hub_serving"/.test(text);
      return ready && text;
    });

    const registry = createRegistry("operator");
    const m = operatorMetrics(registry, () => new Map([["Connected", 2]]));
    m.reconciles.inc({ controller: "devicestream", result: "success" });
    m.reconcileSeconds.observe({ controller: "devicestream" }, 0.01);
    m.queueDepth.set({ queue: "devicestream" }, 0);
    m.retries.inc({ queue: "devicestream" });
    m.cacheSynced.set({ resource: "devicestreams" }, 1);
    m.watchRestarts.inc({ resource: "devicestreams", cause: "error" });
    m.relists.inc({ resource: "devicestreams" });
    m.events.inc({ type: "Normal", reason: "Connected" });
    // The hub runs in the operator's process and registers on the same registry.
    const hub = hubMetrics(registry);
    hub.sessions.set(1);
    hub.sessionAttempts.inc({ result: "accepted" });
    hub.enrollments.inc({ result: "ok" });
    hub.offers.inc({ result: "offered" });
    operatorFamilies = await registry.metrics();
  });
  after(async () => {
    await gateway?.stop();
    await operator?.stop();
    await env?.stop();
    await plane?.stop();
    await target?.close();
  });

  it("promtool check metrics passes on the operator's registry with every labelled family sampled", async () => {
    const { ok, output } = await promtool(operatorFamilies);
    assert.ok(ok, `promtool check metrics found problems:\n${output}`);
  });

  it("the running operator serves its hub's metrics on the same /metrics", () => {
    assert.match(expositions.operator, /^# TYPE devicestreams_hub_sessions_active gauge/m);
    assert.match(expositions.operator, /^devicestreams_operator_leader 1/m);
  });

  it("the running operator exports when its CA and the hub's serving certificate expire, in seconds", () => {
    const expiry = (certificate: string) => {
      const re = new RegExp(
        `^devicestreams_operator_certificate_expiry_timestamp_seconds\\{certificate="${certificate}"\\} (\\S+)$`,
        "m",
      );
      const m = re.exec(expositions.operator);
      assert.ok(m, `no expiry of the ${certificate} certificate`);
      return (Number(m[1]) * 1000 - Date.now()) / (24 * 3600_000);
    };
    const caDays = expiry("ca");
    assert.ok(caDays > 3600 && caDays < 3660, `the CA expires in ${caDays} days`);
    const hubDays = expiry("hub_serving");
    assert.ok(hubDays > 360 && hubDays < 366, `the hub's certificate expires in ${hubDays} days`);
  });

  for (const component of ["relay", "agent", "gateway", "operator"] as const) {
    it(`promtool check metrics passes on the ${component}'s /metrics`, async () => {
      const { ok, output } = await promtool(expositions[component]);
      assert.ok(ok, `promtool check metrics found problems in the ${component}'s metrics:\n${output}`);
    });

    it(`the ${component} exports devicestreams_build_info{component="${component}",version,node_version} = 1`, () => {
      const line = expositions[component].split("\n").find((l) => l.startsWith("devicestreams_build_info{"));
      assert.ok(line, `no devicestreams_build_info in the ${component}'s metrics`);
      assert.match(line, new RegExp(`component="${component}"`));
      assert.match(line, /version="\d+\.\d+\.\d+[^"]*"/);
      assert.match(line, /node_version="v24\./);
      assert.match(line, /\} 1$/);
    });
  }

  it("the data plane's metrics moved: bytes each way and a pairing observation", () => {
    assert.match(expositions.relay, /^devicestreams_relay_bytes_total\{direction="to_device"\} [1-9]/m);
    assert.match(expositions.relay, /^devicestreams_relay_bytes_total\{direction="from_device"\} [1-9]/m);
    assert.match(expositions.relay, /^devicestreams_relay_pairing_duration_seconds_count [1-9]/m);
    assert.match(expositions.agent, /^devicestreams_agent_bytes_total\{direction="from_target"\} [1-9]/m);
  });

  it("the source registers metrics, each under one name, with the project prefix", () => {
    assert.ok(source.length >= 20, `found only ${source.length} metrics in the source: is the scan broken?`);
    const seen = new Map<string, string>();
    for (const m of source) {
      assert.ok(!seen.has(m.name), `${m.name} is registered in both ${seen.get(m.name)} and ${m.file}`);
      seen.set(m.name, m.file);
      if (m.type === "Counter") assert.match(m.name, /_total$/, `counter ${m.name} (${m.file}) must end in _total`);
      else
        assert.doesNotMatch(m.name, /_total$/, `${m.type.toLowerCase()} ${m.name} (${m.file}) must not end in _total`);
      assert.doesNotMatch(m.name, /_(ms|milliseconds|kb|mb|kib|mib|minutes|hours)(_|$)/, `${m.name}: use base units`);
    }
  });

  it("labels are bounded enums: never a device, stream, namespace, host or other per-object value", () => {
    const perStream = new Set(source.filter((m) => m.file === perStreamFile).map((m) => m.name));
    assert.ok(perStream.size >= 3, `no per-stream families found in ${perStreamFile}`);
    for (const m of source) {
      for (const l of m.labels) {
        if (cappedLabels.get(m.name) === l) continue;
        assert.ok(!forbiddenLabels.has(l), `${m.name} (${m.file}) has label "${l}": its values would be unbounded`);
      }
    }
    for (const [component, text] of Object.entries(expositions)) {
      for (const l of labelNamesIn(text, perStream)) {
        assert.ok(!forbiddenLabels.has(l), `the ${component}'s metrics carry label "${l}"`);
      }
    }
    // The per-stream families carry the stream's identity and bounded enums, nothing else per-object.
    const only = (name: string) =>
      expositions.operator
        .split("\n")
        .filter((l) => l.startsWith(`${name}{`))
        .join("\n");
    for (const name of perStream) {
      for (const l of labelNamesIn(only(name))) {
        assert.ok(perStreamLabels.has(l) || !forbiddenLabels.has(l), `${name} carries label "${l}"`);
      }
    }
    assert.match(
      expositions.operator,
      /^devicestreams_operator_stream_phase\{namespace="metrics",devicestream="s1",device="pump-1",phase="[A-Za-z]*"\} 1$/m,
    );
  });

  it("the README's Metrics table documents exactly the metrics the code registers", () => {
    const documented = documentedMetrics();
    const registered = new Set([...source.map((m) => m.name), "devicestreams_build_info"]);
    const missing = [...registered].filter((n) => !documented.includes(n));
    const stale = documented.filter((n) => !registered.has(n));
    assert.deepEqual(missing, [], `metrics registered in code but missing from README.md's Metrics table`);
    assert.deepEqual(stale, [], `metrics in README.md's Metrics table that no code registers`);
  });

  it("every metric the Grafana dashboard queries is exported by a component", () => {
    const exported = new Set<string>();
    for (const text of Object.values(expositions)) for (const n of exportedNames(text)) exported.add(n);
    for (const m of source) {
      exported.add(m.name);
      if (m.type === "Histogram" || m.type === "Summary") {
        for (const s of ["_bucket", "_sum", "_count"]) exported.add(m.name + s);
      }
    }
    const exprs = dashboardExpressions();
    assert.ok(exprs.length >= 10, `the dashboard has only ${exprs.length} queries`);
    const unknown: string[] = [];
    for (const { panel, expr } of exprs) {
      const names = [...expr.matchAll(/\b(devicestreams_[a-zA-Z0-9_]+)/g)].map((m) => m[1]!);
      assert.ok(names.length, `panel "${panel}" queries no devicestreams metric: ${expr}`);
      for (const n of names) if (!exported.has(n)) unknown.push(`panel "${panel}": ${n} in ${expr}`);
    }
    assert.deepEqual(unknown, [], "the dashboard queries metrics no component exports");
  });

  it("the dashboard covers streams, bytes each way, connections, open latency, reconcile errors and agents", () => {
    const all = dashboardExpressions()
      .map((e) => e.expr)
      .join("\n");
    for (const needed of [
      "devicestreams_operator_streams",
      "devicestreams_operator_events_total",
      "devicestreams_relay_bytes_total",
      "devicestreams_relay_connections_active",
      "devicestreams_relay_pairing_duration_seconds_bucket",
      'devicestreams_operator_reconcile_total{result="error"}',
      "devicestreams_relay_device_attached",
      "devicestreams_hub_sessions_active",
      "devicestreams_operator_stream_phase",
      "devicestreams_operator_stream_bytes_total",
      "devicestreams_operator_stream_device_connected",
      'devicestreams_relay_bytes_total{namespace=~"$namespace",devicestream=~"$devicestream",device=~"$device"}',
    ]) {
      assert.ok(all.includes(needed), `no dashboard query uses ${needed}`);
    }
  });
});
