// The operator under stress on a real control plane: two replicas as real processes with leader
// election, an API server outage in the middle of a run, and 500 streams at once.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { collectionPath, core, objectPath } from "../../kube/client.ts";
import type { KubeList, Lease, Pod } from "../../kube/types.ts";
import { type ManagedProcess, startProcess } from "../helpers/child-process.ts";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { freePort } from "../helpers/free-port.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv, operatorNamespace, streams } from "./env.ts";

const root = join(import.meta.dirname, "../..");

/** Sum of every series of `name` on a /metrics page (0 when absent). */
async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe("operator: replicas, outages and scale", function () {
  this.timeout(300_000);
  let env: OperatorEnv;

  before(async () => {
    env = await OperatorEnv.start();
  });

  after(async () => {
    await env?.stop();
  });

  const listStreams = async (ns: string) =>
    (await env.admin.get<KubeList<DeviceStream>>(collectionPath(streams, ns))).items;
  const lease = () =>
    env.admin.get<Lease>(objectPath(core.leases, operatorNamespace, "devicestreams-operator")).catch(() => undefined);

  it("two replicas: only the leader reconciles; killing it hands over within the lease time", async () => {
    const ports = [await freePort(), await freePort()];
    const leaseMs = 4000;
    const start = (i: number): ManagedProcess =>
      stopAfterTest(
        startProcess(
          `operator-${i}`,
          process.execPath,
          [
            join(root, "test/operator/run-operator.ts"),
            `--kubeconfig=${env.operatorKubeconfigPath}`,
            `--namespace=${operatorNamespace}`,
            `--metrics-listen=127.0.0.1:${ports[i]}`,
            `--lease-duration=${leaseMs / 1000}s`,
            "--renew-deadline=3s",
            "--retry-period=500ms",
            `--identity=replica-${i}`,
            "--relay-image=devicestreams:test",
            "--hub-listen=127.0.0.1:0",
          ],
          join(env.cluster.dataDir, "logs", `operator-${i}.log`),
        ),
      );
    const replicas = [start(0), start(1)];
    const leader = await waitFor("exactly one leader", async () => {
      const gauges = await Promise.all(ports.map((p) => metric(p, "devicestreams_operator_leader")));
      return gauges.filter((g) => g === 1).length === 1 ? gauges.indexOf(1) : undefined;
    });
    const follower = 1 - leader;
    assert.equal((await lease())?.spec?.holderIdentity, `replica-${leader}`);
    await waitFor("both replicas ready (caches synced)", async () => {
      const codes = await Promise.all(ports.map(async (p) => (await fetch(`http://127.0.0.1:${p}/readyz`)).status));
      return codes.every((c) => c === 200);
    });

    const ns = await env.namespace("replicas");
    await env.createStream(ns, "first", { device: "d", service: "ssh" });
    await waitFor("the first relay Pod", () => env.getPod(ns, "first-relay"));
    await waitFor("the first stream's status", async () => (await env.getStream(ns, "first")).status?.phase);
    // The count goes up when a reconcile returns, just after the status it wrote is visible.
    await waitFor(
      "the leader's reconcile count",
      async () => (await metric(ports[leader]!, "devicestreams_operator_reconcile_total")) > 0,
    );
    assert.equal(await metric(ports[follower]!, "devicestreams_operator_reconcile_total"), 0, "the follower did not");

    // A crash: no chance to release the lease.
    const killedAt = Date.now();
    replicas[leader]!.child.kill("SIGKILL");
    await replicas[leader]!.exited;
    await waitFor(
      "the follower to take over",
      async () => (await metric(ports[follower]!, "devicestreams_operator_leader")) === 1,
      30_000,
      50,
    );
    const handoverMs = Date.now() - killedAt;
    console.log(`      leader killed; the other replica took over in ${handoverMs} ms (lease ${leaseMs} ms)`);
    assert.ok(handoverMs <= leaseMs + 2000, `handover took ${handoverMs} ms`);
    assert.equal((await lease())?.spec?.holderIdentity, `replica-${follower}`);

    await env.createStream(ns, "second", { device: "d", service: "ssh" });
    await waitFor("the second relay Pod, made by the new leader", () => env.getPod(ns, "second-relay"));
    assert.ok((await metric(ports[follower]!, "devicestreams_operator_reconcile_total")) > 0);

    // A graceful stop releases the lease at once.
    await replicas[follower]!.stop();
    assert.equal(await replicas[follower]!.exited, 0);
    assert.equal((await lease())?.spec?.holderIdentity, "");
  });

  it("recovers without a restart when the API server stops and starts again mid-run", async () => {
    const op = stopAfterTest(await env.startOperator());
    const ns = await env.namespace("outage");
    for (const n of ["a", "b", "c"]) await env.createStream(ns, n, { device: "d", service: "ssh" });
    for (const n of ["a", "b", "c"]) await waitFor(`relay ${n}`, () => env.getPod(ns, `${n}-relay`));

    await env.cluster.stopApiServer();
    // It cannot renew its lease, so it stops reconciling rather than act on a stale view.
    await waitFor("the operator to step down", () => !op.isLeader(), 20_000);
    await env.cluster.startApiServer();

    await waitFor("the operator to lead again", () => op.isLeader(), 60_000);
    for (const n of ["a", "b", "c"]) await env.markPodReady(ns, `${n}-relay`);
    for (const n of ["d", "e"]) await env.createStream(ns, n, { device: "d", service: "ssh" });
    for (const n of ["d", "e"]) await waitFor(`relay ${n}`, () => env.getPod(ns, `${n}-relay`), 60_000);
    for (const n of ["d", "e"]) await env.markPodReady(ns, `${n}-relay`);
    await waitFor(
      "every stream to converge on WaitingForDevice",
      async () => (await listStreams(ns)).every((d) => d.status?.phase === "WaitingForDevice"),
      60_000,
    );
    const restarts = await metric(op.metricsPort, "devicestreams_operator_watch_restarts_total");
    assert.ok(restarts > 0, "the informers noticed the outage and restarted their watches");
  });

  it("500 DeviceStreams created at once converge", async () => {
    const op = stopAfterTest(await env.startOperator());
    const ns = await env.namespace("scale");
    await env.createDevice(ns, "edge", { connected: true, services: [{ name: "ssh" }] });
    const names = Array.from({ length: 500 }, (_, i) => `s${String(i).padStart(3, "0")}`);
    const t0 = Date.now();
    await Promise.all(names.map((n) => env.createStream(ns, n, { device: "edge", service: "ssh" })));
    const createdMs = Date.now() - t0;

    await waitFor(
      "500 relay Pods and statuses",
      async () => {
        const all = await listStreams(ns);
        const pods = (await env.admin.get<KubeList<Pod>>(collectionPath(core.pods, ns))).items;
        return pods.length === 500 && all.filter((d) => d.status?.observedGeneration === 1).length === 500;
      },
      240_000,
      500,
    );
    const relaysMs = Date.now() - t0;

    const t1 = Date.now();
    await pool(names, 32, (n) => env.markPodReady(ns, `${n}-relay`));
    await waitFor(
      "500 streams WaitingForDevice",
      async () => (await listStreams(ns)).filter((d) => d.status?.phase === "WaitingForDevice").length === 500,
      240_000,
      500,
    );
    const readyMs = Date.now() - t1;
    const errors = await metric(op.metricsPort, "devicestreams_operator_workqueue_retries_total");
    console.log(
      `      500 DeviceStreams: created in ${createdMs} ms; every relay Pod/Service/Secret and status in ` +
        `${relaysMs} ms; after the 500 Pods turned ready, all WaitingForDevice in ${readyMs} ms; retries ${errors}`,
    );
  });
});
