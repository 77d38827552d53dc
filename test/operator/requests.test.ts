// API requests per stream over its whole life, counted by the API server's audit log (only the
// operator's ServiceAccount is logged): created, relay made, Pod ready, WaitingForDevice, deleted,
// finalizer removed. Keeps the count bounded: a change that adds a request per stream, or writes
// that fail by design (a stale resourceVersion, conflicts between the operator's own workers),
// fails here rather than at ten thousand streams. bench/fleet.ts reports the same at scale.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { countRequests, operatorAuditPolicy, perStream } from "../../bench/fleet/audit.ts";
import { collectionPath, objectPath } from "../../kube/client.ts";
import type { KubeList } from "../../kube/types.ts";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, OperatorEnv, serviceAccountUser, streams } from "./env.ts";

/**
 * Per stream, when nothing fails: Secret, Service, NetworkPolicy and Pod (4); finalizer added and
 * removed (2); status Pending, WaitingForDevice and the DeviceAccepted stand-in (3); the relay Pod
 * deleted (1); its record on the Device, read and written (2); Events RelayCreated, two transitions
 * and Deleted (4): 16, and one for a reconcile that now and then races its own write.
 */
const bound = 17;

describe("operator: API requests per stream", function () {
  this.timeout(240_000);
  let env: OperatorEnv;

  before(async () => {
    env = await OperatorEnv.start({ auditPolicy: operatorAuditPolicy(serviceAccountUser) });
  });

  after(async () => {
    await env?.stop();
  });

  it(`stays within ${bound} over a stream's life, with no write failing by design`, async () => {
    stopAfterTest(await env.startOperator());
    const ns = await env.namespace("requests");
    await env.createDevice(ns, "edge", { connected: true, services: [{ name: "ssh" }] });
    // The Device's own requests (its enrolment token) come first and are not the streams'.
    const audit = join(env.cluster.dataDir, "logs", "audit.log");
    await waitFor("the Device's enrolment token", async () => {
      const device = await env.admin.get<Device>(objectPath(devices, ns, "edge"));
      return device.status?.enrollment?.secretName;
    });
    await new Promise((r) => setTimeout(r, 1000));
    const before = countRequests(audit).lines;
    const n = 20;
    const names = Array.from({ length: n }, (_, i) => `r${i}`);
    await Promise.all(names.map((name) => env.createStream(ns, name, { device: "edge", service: "ssh" })));
    for (const name of names) await waitFor(`relay ${name}`, () => env.getPod(ns, `${name}-relay`), 60_000);
    await Promise.all(names.map((name) => env.markPodReady(ns, `${name}-relay`)));
    const list = async () => (await env.admin.get<KubeList<DeviceStream>>(collectionPath(streams, ns))).items;
    await waitFor(
      "every stream WaitingForDevice, its DeviceAccepted reported",
      async () =>
        (await list()).filter(
          (d) =>
            d.status?.phase === "WaitingForDevice" && d.status.conditions?.some((c) => c.type === "DeviceAccepted"),
        ).length === n,
      60_000,
      200,
    );
    await Promise.all(names.map((name) => env.admin.delete(objectPath(streams, ns, name))));
    await waitFor("every stream gone", async () => (await list()).length === 0, 60_000, 200);
    // Events are sent after the reconcile that records them: let the last ones land.
    await new Promise((r) => setTimeout(r, 2000));

    const counts = countRequests(audit, before);
    const ps = perStream(counts, n);
    console.log(`      ${ps.total} requests per stream: ${JSON.stringify(ps.byKind)}`);
    assert.ok(ps.total <= bound, `${ps.total} requests per stream: ${JSON.stringify(ps.byKind)}`);
    // Not found after the stream went (a finalizer patch racing the deletion) is expected; a
    // conflict or an invalid patch is a wasted request.
    const wasted = Object.entries(counts.failures).filter(([k]) => / (409|422)$/.test(k));
    assert.deepEqual(wasted, [], "no request failed on a stale resourceVersion or a conflict");
  });
});
