// Ended DeviceStreams are deleted after their retention time and leave a record on their Device,
// against a real kube-apiserver with the operator under operator/rbac.yaml's identity.
import assert from "node:assert/strict";
import type { Device } from "../../api/v1alpha1.ts";
import { KubeApiError, objectPath } from "../../kube/client.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { usageFieldManager } from "../../operator/usage/poller.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, OperatorEnv, streams } from "./env.ts";

describe("operator: retention of ended streams and their record on the Device", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  const defaultTtlSeconds = 3;

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator([`--stream-ttl-after-finished=${defaultTtlSeconds}s`]);
  });
  after(async () => {
    await op?.stop();
    await env?.stop();
  });

  const device = (ns: string, name: string) => env.admin.get<Device>(objectPath(devices, ns, name));
  const gone = (ns: string, name: string, timeoutMs = 30_000) =>
    waitFor(`${ns}/${name} to be deleted`, () => env.gone(streams, ns, name), timeoutMs);
  // A stream whose device never attaches fails 1 s after its relay is up: a quick way to end one.
  const failing = (ttl?: number) => ({
    device: "pump-1",
    service: "ssh",
    timeouts: { connect: "1s", idle: "1m", maxLifetime: "1h" },
    ...(ttl === undefined ? {} : { ttlSecondsAfterFinished: ttl }),
  });

  it("spec.ttlSecondsAfterFinished deletes the ended stream; the Device keeps who, when, bytes and why", async () => {
    const ns = await env.namespace("ttl-spec");
    await env.createDevice(ns, "pump-1");
    const created = await env.createStream(ns, "s1", failing(2));
    // Bytes as the usage poller writes them, under its own field manager.
    await env.admin.apply(
      `${objectPath(streams, ns, "s1")}/status`,
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        metadata: { name: "s1", namespace: ns },
        status: { bytes: { toDevice: 1234, fromDevice: 567 } },
      },
      usageFieldManager,
    );
    await env.markPodReady(ns, "s1-relay").catch(() => undefined);
    const ended = await waitFor("s1 to fail", async () => {
      const s = await env.getStream(ns, "s1");
      return s.status?.phase === "Failed" && s;
    });
    const endedAt = Date.parse(ended.status!.endedAt!);
    await gone(ns, "s1");
    const deletedAfterMs = Date.now() - endedAt;
    assert.ok(deletedAfterMs >= 2000 - 1000, `deleted ${deletedAfterMs} ms after it ended: before its 2 s`);
    const records = (await device(ns, "pump-1")).status?.recentStreams;
    assert.deepEqual(records, [
      {
        name: "s1",
        uid: created.metadata.uid,
        service: "ssh",
        createdAt: created.metadata.creationTimestamp,
        endedAt: ended.status!.endedAt,
        phase: "Failed",
        reason: "ConnectTimeout",
        bytes: { toDevice: 1234, fromDevice: 567 },
      },
    ]);
  });

  it("without the field, the operator's --stream-ttl-after-finished applies", async () => {
    const ns = await env.namespace("ttl-default");
    await env.createDevice(ns, "pump-1");
    await env.createStream(ns, "s2", failing());
    await waitFor("s2 to fail", async () => (await env.getStream(ns, "s2")).status?.phase === "Failed");
    const endedAt = Date.parse((await env.getStream(ns, "s2")).status!.endedAt!);
    assert.equal(await env.gone(streams, ns, "s2"), false, "deleted before its retention time");
    await gone(ns, "s2");
    assert.ok(Date.now() - endedAt >= (defaultTtlSeconds - 1) * 1000);
    const [r] = (await device(ns, "pump-1")).status!.recentStreams!;
    assert.equal(r!.name, "s2");
    assert.equal(r!.reason, "ConnectTimeout");
  });

  it("streams deleted while live are recorded as Deleted; the Device keeps the last 10, newest first", async () => {
    const ns = await env.namespace("ttl-many");
    await env.createDevice(ns, "pump-1");
    const names = Array.from({ length: 12 }, (_, i) => `live-${String(i).padStart(2, "0")}`);
    for (const name of names) await env.createStream(ns, name, { device: "pump-1", service: "ssh" });
    for (const name of names) {
      await waitFor(`${name} to carry the finalizer`, async () => (await env.getStream(ns, name)).metadata.finalizers);
    }
    // One at a time, so their end times (seconds) order them: the last deleted is the newest.
    for (const name of names) {
      await env.admin.delete(objectPath(streams, ns, name));
      await gone(ns, name);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const records = (await device(ns, "pump-1")).status!.recentStreams!;
    assert.equal(records.length, 10);
    assert.deepEqual(
      records.map((r) => r.name),
      names.slice(2).reverse(),
    );
    for (const r of records) {
      assert.equal(r.reason, "Deleted");
      assert.ok(r.phase && r.phase !== "Expired" && r.phase !== "Failed", `${r.name}: ${r.phase}`);
    }
  });

  it("a stream of a Device that is gone leaves no record and is still deleted", async () => {
    const ns = await env.namespace("ttl-nodevice");
    await env.createStream(ns, "orphan", failing(0));
    await gone(ns, "orphan");
  });

  it("the API server refuses a negative or over-long ttlSecondsAfterFinished", async () => {
    const ns = await env.namespace("ttl-invalid");
    for (const ttl of [-1, 31536001]) {
      const err = await env.createStream(ns, `bad-${ttl < 0 ? "neg" : "big"}`, failing(ttl)).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof KubeApiError && err.status === 422, `ttl ${ttl}: ${err}`);
      assert.match(err.message, /ttlSecondsAfterFinished/);
    }
  });
});
