// The Grafana dashboard and the alerts against real scraped data: the whole system on loopback (real
// API server, the operator as a process, relay Pods run by the kubelet stand-in, an enrolled agent in
// front of an HTTP target) scraped by Debian's Prometheus the way the chart's monitors say: the
// operator as its ServiceMonitor does (honorLabels), relay Pods discovered through the API server
// with the PodMonitor's relabelling (Debian's Prometheus has no kubernetes_sd: the test serves the
// same Pod metadata from the API server over http_sd, test/helpers/prometheus.ts). Then every query of every panel and variable of the dashboard
// runs against that Prometheus, with one stream picked through the namespace/device/stream variables,
// and the chart's alert rules are evaluated on the same data.
// Grafana itself is not run: neither Debian nor npm packages it, so the JSON is checked as data
// (queries, variables, layout) rather than rendered.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { forwardLocalPort, type LocalPortForward } from "../../client/local-port.ts";
import { streamAccess } from "../../client/stream-lookup.ts";
import { objectPath } from "../../kube/client.ts";
import { createLogger } from "../../runtime/log.ts";
import { cloudChart, template } from "../charts/helpers.ts";
import { type HttpTarget, httpTarget } from "../helpers/http-target.ts";
import { type HubAgent, startHubAgent } from "../helpers/hub-agent.ts";
import {
  type Prometheus,
  type PromSeries,
  podMonitorJob,
  podsDiscovery,
  startPrometheus,
} from "../helpers/prometheus.ts";
import { System } from "../helpers/system.ts";
import { waitFor } from "../helpers/wait.ts";
import { operatorNamespace, streams } from "../operator/env.ts";

const root = join(import.meta.dirname, "../..");
const ns = "plant-a";
const rateInterval = "20s";

interface Target {
  refId: string;
  expr: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  gridPos: { x: number; y: number; w: number; h: number };
}
interface Variable {
  name: string;
  type: string;
  query?: string;
  allValue?: string;
}
const dashboard = JSON.parse(
  readFileSync(join(root, "charts/devicestreams/dashboards/devicestreams.json"), "utf8"),
) as {
  panels: Panel[];
  templating: { list: Variable[] };
};

/** Grafana's interpolation of one selected value per variable (a regex matcher takes it as is). */
function interpolate(expr: string, vars: Record<string, string>): string {
  return expr.replaceAll("$__rate_interval", rateInterval).replace(/\$(\w+)/g, (m, name: string) => vars[name] ?? m);
}

/**
 * Queries that may find no series in this run, and why: a labelled counter exists only once
 * something happened, and these things do not happen in a healthy run.
 */
const mayBeEmpty: Record<string, string> = {
  "Streams opened and refused/B": "no stream is refused",
  "Reconcile errors/A": "no reconcile fails",
  "Watch restarts and relists/A": "no watch breaks",
  "Work queue/B": "no reconcile is retried",
  "Errors by stream/B": "no paired connection ends other than completed",
};

describe("dashboard and alerts: every query against Prometheus scraping a running system", function () {
  this.timeout(300_000);
  let sys: System;
  let target: HttpTarget;
  let edge: HubAgent | undefined;
  let prom: Prometheus | undefined;
  let discovery: { url: string; close(): Promise<void> } | undefined;
  let start = 0;
  const forwards: LocalPortForward[] = [];
  const log = createLogger("e2e");

  const streamOf = (name: string) => sys.env.admin.get<DeviceStream>(objectPath(streams, ns, name));
  const open = async (name: string, spec: Record<string, unknown>) => {
    await sys.env.admin.create(
      `/apis/devicestreams.io/v1alpha1/namespaces/${ns}/devicestreams`,
      // The test connects with the admin's client certificate, which has no token to review.
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        metadata: { name },
        spec: { access: { sourceToken: true }, ...spec },
      },
      "tests",
    );
  };
  const forward = async (name: string, token?: string) => {
    const ds = await waitFor(`${name} to be connected`, async () => {
      const s = await streamOf(name);
      return s.status?.phase === "Connected" && s;
    });
    const access = await streamAccess(sys.env.admin, ds);
    const f = await forwardLocalPort(access.relay, token ?? access.credential, "127.0.0.1", 0, log);
    forwards.push(f);
    return f;
  };

  before(async function () {
    this.timeout(240_000);
    start = Math.floor(Date.now() / 1000);
    [sys, target] = await Promise.all([
      System.start({ namespace: ns, operatorArgs: ["--usage-poll-interval=1s"] }),
      httpTarget(),
    ]);
    edge = await startHubAgent(sys, {
      namespace: ns,
      device: "pump-1",
      // "dead" is allowed but nothing listens there: connections to it fail at the device.
      allow: [`web=${target.address}`, "dead=127.0.0.1:1"],
    });
    const agentMetrics = await edge.agent!.waitFor(/ready metricsPort=(\d+)/, 30_000).catch(() => undefined);

    // The scrape jobs prometheus-operator would make of the chart's ServiceMonitor and PodMonitor.
    const chart = await template(
      cloudChart,
      { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } },
      { apiVersions: ["monitoring.coreos.com/v1"] },
    );
    const sm = chart.one("ServiceMonitor").spec.endpoints[0];
    const pm = chart.one("PodMonitor") as unknown as Parameters<typeof podMonitorJob>[0];
    // Debian's Prometheus has no kubernetes_sd: the same Pod metadata from the API server, over http_sd.
    discovery = await podsDiscovery(sys.env.admin);
    prom = await startPrometheus({
      ruleFiles: [join(root, "charts/devicestreams/files/alerts.yaml")],
      scrapeConfigs: [
        {
          job_name: "devicestreams-operator",
          honor_labels: sm.honorLabels === true,
          static_configs: [
            {
              targets: sys.operators.map((r) => `127.0.0.1:${r.metricsPort}`),
              labels: { namespace: operatorNamespace, pod: "devicestreams-operator-0" },
            },
          ],
        },
        podMonitorJob(pm, discovery.url),
        ...(agentMetrics
          ? [{ job_name: "devicestreams-agent", static_configs: [{ targets: [`127.0.0.1:${agentMetrics[1]}`] }] }]
          : []),
      ],
    });

    // s1 carries HTTP requests; s2 only failing dials; s3 ends at once (its device does not exist).
    await open("s1", { device: "pump-1", service: "web" });
    await open("s2", { device: "pump-1", service: "dead" });
    await open("s3", { device: "ghost", service: "web", timeouts: { connect: "1s", idle: "1m", maxLifetime: "1h" } });
    const f1 = await forward("s1");
    const f2 = await forward("s2");
    // A client with a wrong token: the relay refuses the credential.
    const bad = await forward("s1", "not-the-token");
    // Traffic only once Prometheus scrapes both relays, spread over several scrapes, so rates see it.
    await waitFor(
      "Prometheus to scrape both relays",
      async () => (await prom!.query(`count_over_time(up{devicestream=~"s1|s2"}[10s]) >= 2`)).length === 2,
      60_000,
    );
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 4; i++) {
        const n = round * 4 + i;
        const res = await fetch(`http://127.0.0.1:${f1.port}/hello?name=dash${n}`, {
          headers: { connection: "close" },
        });
        assert.equal(await res.text(), `hello dash${n}\n`);
      }
      await fetch(`http://127.0.0.1:${f2.port}/`, { headers: { connection: "close" } }).catch(() => undefined);
      await fetch(`http://127.0.0.1:${bad.port}/`, { headers: { connection: "close" } }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1000));
    }
    await waitFor("s3 to fail", async () => (await streamOf("s3")).status?.phase === "Failed", 60_000);
    // Scraped: the relay of s1 with the stream's labels and its bytes, and the operator's status.bytes.
    await waitFor(
      "Prometheus to hold s1's relay and operator series",
      async () => {
        const relay = await prom!.query(`devicestreams_relay_bytes_total{namespace="${ns}",devicestream="s1"}`);
        const op = await prom!.query(`devicestreams_operator_stream_bytes_total{devicestream="s1"} > 0`);
        const auth = await prom!.query(`devicestreams_relay_auth_failures_total{devicestream="s1"}`);
        return relay.length === 2 && op.length === 2 && auth.length > 0;
      },
      90_000,
    );
    // And ten more seconds of scrapes after it, so every rate window holds several samples.
    await new Promise((r) => setTimeout(r, 10_000));
  });
  after(async () => {
    for (const f of forwards) await f.close().catch(() => undefined);
    await prom?.stop();
    await discovery?.close();
    await edge?.stop();
    await sys?.stop();
    await target?.close();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed" && sys) {
      console.error(await sys.dump());
      console.error(`----- prometheus -----\n${prom?.process.tail(40)}`);
    }
  });

  it("relay series carry namespace, devicestream and device from the Pod (PodMonitor relabelling)", async () => {
    const up = await prom!.query(`up{devicestream!=""}`);
    const s1 = up.find((s) => s.metric.devicestream === "s1");
    assert.ok(s1, `no relay target for s1: ${JSON.stringify(up.map((s) => s.metric))}`);
    assert.equal(s1.metric.namespace, ns);
    assert.equal(s1.metric.device, "pump-1");
    assert.equal(s1.metric.pod, "s1-relay");
    assert.equal(s1.value![1], "1");
  });

  it("the operator's per-stream series name only live streams: the failed one is gone", async () => {
    const live = await prom!.query("devicestreams_operator_stream_phase");
    const names = live.map((s) => `${s.metric.namespace}/${s.metric.devicestream}=${s.metric.phase}`).sort();
    assert.deepEqual(names, [`${ns}/s1=Connected`, `${ns}/s2=Connected`]);
    // The namespace is the stream's (honorLabels), not the operator's.
    assert.ok(live.every((s) => s.metric.namespace === ns));
    const scraped = await (await fetch(`http://127.0.0.1:${sys.operators[0]!.metricsPort}/metrics`)).text();
    assert.doesNotMatch(scraped, /devicestream="s3"/);
  });

  it("the variables list the namespace, device and streams; picking one narrows the next", async () => {
    const vars = dashboard.templating.list.filter((v) => v.type === "query");
    assert.deepEqual(
      vars.map((v) => v.name),
      ["namespace", "device", "devicestream"],
    );
    const values = async (v: Variable, picked: Record<string, string>) => {
      const m = /^label_values\((.*),\s*(\w+)\)$/.exec(v.query!);
      assert.ok(m, `variable ${v.name}: ${v.query}`);
      const series = await prom!.series(interpolate(m[1]!, picked));
      return [...new Set(series.map((s) => s[m[2]!]!))].sort();
    };
    const [nsVar, deviceVar, streamVar] = vars as [Variable, Variable, Variable];
    assert.deepEqual(await values(nsVar, {}), [ns]);
    assert.deepEqual(await values(deviceVar, { namespace: ns }), ["pump-1"]);
    assert.deepEqual(await values(streamVar, { namespace: ns, device: "pump-1" }), ["s1", "s2"]);
    assert.deepEqual(await values(streamVar, { namespace: "elsewhere", device: ".*" }), []);
  });

  it("every panel query runs, and finds data for s1 when the variables pick it", async () => {
    const picked = { namespace: ns, device: "pump-1", devicestream: "s1" };
    const all = { namespace: ".*", device: ".*", devicestream: ".*" };
    const end = Math.ceil(Date.now() / 1000);
    const empty: string[] = [];
    let queries = 0;
    for (const panel of dashboard.panels) {
      for (const t of panel.targets ?? []) {
        const key = `${panel.title}/${t.refId}`;
        const expr = interpolate(t.expr, picked);
        assert.doesNotMatch(expr, /\$\w/, `${key}: a variable is left in ${expr}`);
        const run = (e: string) =>
          prom!.queryRange(e, start, end, 2).catch((err: Error) => {
            throw new Error(`panel "${key}": ${err.message}\n${e}`);
          });
        const result = await run(expr);
        queries++;
        const found = (r: PromSeries[]) => r.some((s) => s.values?.length);
        // Some series exist only for another stream (s2's failed dials): then All must find them.
        if (!found(result) && !found(await run(interpolate(t.expr, all))) && !(key in mayBeEmpty)) {
          empty.push(`${key}: ${expr}`);
        }
        // Per-stream queries answer for the picked stream only.
        for (const s of result) {
          if (s.metric.devicestream !== undefined) assert.equal(s.metric.devicestream, "s1", `${key}: ${expr}`);
        }
      }
    }
    assert.ok(queries >= 40, `only ${queries} queries`);
    const keys = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => `${p.title}/${t.refId}`));
    for (const k of Object.keys(mayBeEmpty)) assert.ok(keys.includes(k), `mayBeEmpty names no query: ${k}`);
    assert.deepEqual(empty, [], "panels without data in a run that exercised them");
  });

  it("one stream's bytes, connections, errors and round trip are picked out", async () => {
    const panel = (title: string, refId = "A") => {
      const t = dashboard.panels.find((p) => p.title === title)?.targets?.find((x) => x.refId === refId);
      assert.ok(t, `no panel "${title}" ${refId}`);
      return t.expr;
    };
    const end = Math.ceil(Date.now() / 1000);
    const peak = async (title: string, refId: string, stream: string) => {
      const expr = interpolate(panel(title, refId), { namespace: ns, device: "pump-1", devicestream: stream });
      const r: PromSeries[] = await prom!.queryRange(expr, start, end, 1);
      const by = new Map<string, number>();
      for (const s of r) {
        const label = s.metric.direction ?? s.metric.result ?? s.metric.reason ?? "";
        const max = Math.max(...s.values!.map((v) => Number(v[1])).filter(Number.isFinite));
        by.set(label, Math.max(by.get(label) ?? 0, max));
      }
      return by;
    };
    const relayBytes = await peak("Bytes per second by stream", "A", "s1");
    assert.ok((relayBytes.get("to_device") ?? 0) > 0 && (relayBytes.get("from_device") ?? 0) > 0, `${[...relayBytes]}`);
    const statusBytes = await peak("Bytes carried (status.bytes)", "A", "s1");
    assert.ok((statusBytes.get("from_device") ?? 0) >= 24 * "hello dash0\n".length, `${[...statusBytes]}`);
    assert.equal((await peak("Bytes carried (status.bytes)", "A", "s2")).get("from_device") ?? 0, 0);
    const attempts = await peak("Connections by stream", "B", "s1");
    assert.ok((attempts.get("paired") ?? 0) > 0, `${[...attempts]}`);
    const errors2 = await peak("Errors by stream", "A", "s2");
    assert.ok(
      [...errors2.values()].some((v) => v > 0),
      `s2's failed dials: ${[...errors2]}`,
    );
    const auth = await peak("Errors by stream", "C", "s1");
    assert.ok(
      [...auth.values()].some((v) => v > 0),
      `s1's refused token: ${[...auth]}`,
    );
    const rtt = await peak("Round trip to the device (pairing p95)", "A", "s1");
    const p95 = [...rtt.values()][0];
    assert.ok(p95 !== undefined && p95 > 0 && p95 < 5, `p95 pairing ${p95}`);
    const online = await peak("Device online and attached", "A", "s1");
    assert.equal([...online.values()][0], 1);
  });

  it("the chart's alert rules evaluate on this data without errors, and none fires", async () => {
    const data = await prom!.api<{
      groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }>;
    }>("/api/v1/rules");
    const rules = data.groups.flatMap((g) => g.rules);
    assert.ok(rules.length >= 14, `${rules.length} rules loaded`);
    for (const r of rules) assert.equal(r.health, "ok", `${r.name}: ${r.lastError}`);
    const alerts = await prom!.api<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>(
      "/api/v1/alerts",
    );
    // The refused token may count as auth failures, but not for 10 minutes; nothing else is wrong.
    const firing = alerts.alerts.filter((a) => a.state === "firing").map((a) => a.labels.alertname);
    assert.deepEqual(firing, []);
  });

  it("the layout: unique panel ids, every panel inside the 24-column grid", () => {
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "duplicate panel ids");
    for (const p of dashboard.panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" leaves the grid`);
    }
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `panel "${p.title}" overlaps another at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});
