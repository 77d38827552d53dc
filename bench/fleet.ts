// Fleet scale on the operator's side (issue 18): N DeviceStreams created at once against a real
// kube-apiserver, etcd and kube-controller-manager, the operator as its own process (as the
// resilience test runs it). Measures the time until every stream's relay exists and, with a
// stand-in kubelet marking each relay Pod ready as it appears (what the 500-stream test does), until
// every stream is WaitingForDevice; the operator's RSS sampled from /proc throughout; and, from the
// API server's audit log, the requests the operator made per stream over each stream's whole
// life (create, status, delete, finalizer). Relays are per-stream Pods that never run (no
// scheduler): "ready" here is the Pod's Ready condition written by the stand-in, not pool mode.
//
//   node bench/fleet.ts [--streams 10000] [--smoke] [--per-namespace 1000] [--workers 16] [--out bench/fleet.json]
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { load } from "js-yaml";
import { managedSelector } from "../api/constants.ts";
import type { DeviceStream } from "../api/v1alpha1.ts";
import { nodeFlags } from "../cli/node-flags.ts";
import { collectionPath, core, objectPath } from "../kube/client.ts";
import { Informer } from "../kube/informer.ts";
import { keyOf, type Pod, type Service } from "../kube/types.ts";
import { createLogger } from "../runtime/log.ts";
import { startProcess } from "../test/helpers/child-process.ts";
import { freePort } from "../test/helpers/free-port.ts";
import { StopWaiting, waitFor } from "../test/helpers/wait.ts";
import { OperatorEnv, operatorNamespace, serviceAccountUser, streams as streamResource } from "../test/operator/env.ts";
import { countRequests, operatorAuditPolicy, perStream } from "./fleet/audit.ts";
import { loadAverage } from "./procs.ts";

const { values } = parseArgs({
  options: {
    streams: { type: "string" },
    smoke: { type: "boolean", default: false },
    "per-namespace": { type: "string", default: "1000" },
    workers: { type: "string", default: "16" },
    out: { type: "string", default: join(import.meta.dirname, "fleet.json") },
    /** Node.js options of the operator; default: the chart's operator.nodeOptions, as a release runs it. */
    "operator-node-options": { type: "string" },
    /** Writes a V8 heap snapshot of the operator once it has settled with every stream live. */
    "heap-snapshot": { type: "string" },
  },
});
const n = values.smoke ? 200 : Number(values.streams ?? 10_000);
const perNs = Number(values["per-namespace"]);
const root = join(import.meta.dirname, "..");
const log = createLogger("bench-fleet");

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** VmRSS and VmHWM (the kernel's own peak) of `pid`, in MiB. */
function memory(pid: number): { rss: number; hwm: number } {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0);
    return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

const chartValues = load(readFileSync(join(root, "charts/devicestreams/values.yaml"), "utf8")) as {
  operator: { nodeOptions?: string };
};
const operatorNodeOptions = values["operator-node-options"] ?? chartValues.operator.nodeOptions ?? "";
const env = await OperatorEnv.start({ auditPolicy: operatorAuditPolicy(serviceAccountUser) });
const metricsPort = await freePort();
const operator = startProcess(
  "operator",
  process.execPath,
  [
    ...(values["heap-snapshot"]
      ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${values["heap-snapshot"]}`]
      : []),
    ...nodeFlags, // as the image runs it, with the chart's NODE_OPTIONS
    ...operatorNodeOptions.split(" ").filter((o) => o),
    join(root, "test/operator/run-operator.ts"),
    `--kubeconfig=${env.operatorKubeconfigPath}`,
    `--namespace=${operatorNamespace}`,
    `--metrics-listen=127.0.0.1:${metricsPort}`,
    "--relay-image=devicestreams:bench",
    "--hub-listen=127.0.0.1:0",
    `--max-streams=${Math.max(n, 10_000)}`,
    `--max-streams-per-namespace=${perNs}`,
    `--workers=${values.workers}`,
  ],
  join(env.cluster.dataDir, "logs", "operator.log"),
);
const pid = operator.child.pid!;
let peak = 0;
const samples: Array<[number, number]> = [];
const t0 = Date.now();
const sampler = setInterval(() => {
  const { rss } = memory(pid);
  peak = Math.max(peak, rss);
  samples.push([Date.now() - t0, Math.round(rss)]);
}, 250);

try {
  await waitFor(
    "the operator to lead",
    async () => (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).includes("operator_leader 1"),
    60_000,
    200,
  );
  const idleRss = memory(pid).rss;
  const namespaces = Array.from({ length: Math.ceil(n / perNs) }, (_, i) => `fleet-${i}`);
  for (const ns of namespaces) {
    await env.namespace(ns);
    await env.createDevice(ns, "edge", { connected: true, services: [{ name: "ssh" }] });
  }
  const names = Array.from({ length: n }, (_, i) => ({
    ns: namespaces[Math.floor(i / perNs)]!,
    name: `s${String(i).padStart(5, "0")}`,
  }));

  // The bench's own caches (not the operator's): what exists, without polling lists of 10,000.
  const watch = <T extends DeviceStream | Pod | Service>(name: string, path: string, labelSelector?: string) => {
    const i = new Informer<T>({ name, client: env.admin, path, labelSelector, log });
    i.start();
    return i;
  };
  const dsCache = watch<DeviceStream>("devicestreams", collectionPath(streamResource));
  const podCache = watch<Pod>("pods", collectionPath(core.pods), managedSelector);
  const svcCache = watch<Service>("services", collectionPath(core.services), managedSelector);
  await Promise.all([dsCache, podCache, svcCache].map((i) => i.waitForSync()));

  // Stand-in kubelet: each relay Pod turns ready as soon as it exists.
  const toMark: Pod[] = [];
  podCache.on((event, pod) => {
    if (event === "add") toMark.push(pod);
  });
  let marking = true;
  const kubelet = (async () => {
    while (marking || toMark.length) {
      const batch = toMark.splice(0, 256);
      if (!batch.length) {
        await sleep(50);
        continue;
      }
      await pool(batch, 32, (p) =>
        env.markPodReady(p.metadata.namespace!, p.metadata.name!).catch((err: unknown) => log.warn(String(err))),
      );
    }
  })();

  const created0 = Date.now();
  // An hour to connect: the default 5 min would fail the streams a slow operator has not reached yet.
  const spec = { device: "edge", service: "ssh", timeouts: { connect: "1h" } };
  await pool(names, 64, ({ ns, name }) => env.createStream(ns, name, spec));
  const createdS = (Date.now() - created0) / 1000;
  log.info("created", { streams: n, seconds: createdS });

  const count = (pred: (ds: DeviceStream) => boolean) => dsCache.list().filter(pred).length;
  const hasRelay = (ds: DeviceStream) =>
    ds.status?.observedGeneration === 1 &&
    podCache.get(ds.metadata.namespace!, `${ds.metadata.name}-relay`) !== undefined &&
    svcCache.get(ds.metadata.namespace!, `${ds.metadata.name}-relay`) !== undefined;
  const progress = setInterval(
    () =>
      log.info("progress", {
        relays: count(hasRelay),
        waiting: count((d) => d.status?.phase === "WaitingForDevice"),
        rssMiB: Math.round(memory(pid).rss),
      }),
    5000,
  );
  const limitMs = 30 * 60_000;
  const noneFailed = () => {
    const failed = dsCache.list().find((d) => d.status?.phase === "Failed");
    if (failed) throw new StopWaiting(`${keyOf(failed)} failed: ${JSON.stringify(failed.status?.conditions)}`);
  };
  await waitFor("every relay", () => noneFailed() ?? count(hasRelay) === n, limitMs, 250);
  const relaysS = (Date.now() - created0) / 1000;
  await waitFor(
    "every stream WaitingForDevice",
    () => count((d) => d.status?.phase === "WaitingForDevice") === n,
    limitMs,
    250,
  );
  const readyS = (Date.now() - created0) / 1000;
  marking = false;
  await kubelet;
  const convergedPeak = peak;
  // Quiet for a while: what the operator holds for N live streams once the burst's garbage is gone.
  await sleep(15_000);
  const steadyRss = memory(pid).rss;
  if (values["heap-snapshot"]) {
    operator.child.kill("SIGUSR2");
    await sleep(30_000); // the snapshot is written synchronously; the operator answers nothing meanwhile
  }

  const deleted0 = Date.now();
  await pool(names, 64, ({ ns, name }) => env.admin.delete(objectPath(streamResource, ns, name)));
  await waitFor("every stream gone (finalizer removed)", () => dsCache.list().length === 0, limitMs, 250);
  const deletedS = (Date.now() - deleted0) / 1000;
  clearInterval(progress);
  await sleep(3000); // requests in flight when the last stream went reach the audit log
  const counts = countRequests(join(env.cluster.dataDir, "logs", "audit.log"));
  const ps = perStream(counts, n);
  clearInterval(sampler);
  const hwm = memory(pid).hwm;
  for (const i of [dsCache, podCache, svcCache]) await i.stop();

  const result = {
    streams: n,
    namespaces: namespaces.length,
    workers: Number(values.workers),
    operator_node_options: operatorNodeOptions,
    ready_means:
      "per-stream relay Pods (not pool mode) that never run: a stand-in kubelet marks each Pod Ready as it appears; " +
      "a stream is ready at status.phase WaitingForDevice",
    created_s: createdS,
    relays_exist_s: relaysS,
    [`streams_${n >= 10_000 ? "10k" : n}_ready_s`]: readyS,
    deleted_s: deletedS,
    operator_rss_mib_idle: Math.round(idleRss),
    operator_rss_mib_peak: Math.round(Math.max(convergedPeak, hwm)),
    operator_rss_mib_steady: Math.round(steadyRss),
    [`operator_rss_mib_${n >= 10_000 ? "10k" : n}`]: Math.round(Math.max(convergedPeak, hwm)),
    api_requests_per_stream: ps.total,
    api_requests_per_stream_by_kind: ps.byKind,
    api_requests_total_by_kind: counts.byKind,
    api_request_failures: counts.failures,
    load_average: loadAverage(),
    rss_samples_every_5s: samples.filter((_, i) => i % 20 === 0),
  };
  console.log(JSON.stringify({ ...result, rss_samples_every_5s: undefined }, null, 2));
  writeFileSync(values.out!, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  clearInterval(sampler);
  await operator.stop(10_000);
  await env.stop();
}
