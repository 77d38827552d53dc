// The informer against a real API server: it relists when its resourceVersion has expired (410
// Gone from the real watch cache) and it comes back by itself after the API server was down.
import assert from "node:assert/strict";
import { collectionPath, KubeClient, type Resource } from "../../kube/client.ts";
import { Informer } from "../../kube/informer.ts";
import type { KubeObject } from "../../kube/types.ts";
import { createLogger } from "../../runtime/log.ts";
import { startTestCluster, type TestCluster } from "../helpers/kube-apiserver.ts";
import { waitFor } from "../helpers/wait.ts";

const configMaps: Resource = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };

describe("operator: informer", function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let client: KubeClient;
  let informer: Informer<KubeObject>;
  const seen: string[] = [];
  let relists = 0;
  const restarts: string[] = [];

  before(async () => {
    cluster = await startTestCluster();
    client = new KubeClient(cluster.kubeConfig);
    await client.apply(
      "/api/v1/namespaces/inf",
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "inf" } },
      "t",
    );
    informer = new Informer<KubeObject>({
      name: "configmaps",
      client,
      path: collectionPath(configMaps, "inf"),
      log: createLogger("informer-test"),
      onRelist: () => relists++,
      onRestart: (cause) => restarts.push(cause),
    });
    informer.on((event, obj) => seen.push(`${event}:${obj.metadata.name}`));
    informer.start();
    await informer.waitForSync();
  });

  after(async () => {
    await informer?.stop();
    client?.close();
    await cluster?.stop();
  });

  const create = (name: string) =>
    client.create(collectionPath(configMaps, "inf"), { apiVersion: "v1", kind: "ConfigMap", metadata: { name } }, "t");

  it("delivers changes through its watch after the first list", async () => {
    assert.equal(relists, 1);
    await create("a");
    await waitFor("add:a", () => seen.includes("add:a"));
    assert.ok(informer.get("inf", "a"));
  });

  it("comes back by itself after the API server restarts, listing again when its resourceVersion expired", async () => {
    // Pretend the informer's last resourceVersion is long gone: after the restart the real watch
    // cache answers 410 Gone for it, and the informer must list again rather than give up.
    (informer as unknown as { resourceVersion: string }).resourceVersion = "1";
    await cluster.stopApiServer();
    await waitFor("the informer to notice the outage", () => restarts.length > 0, 60_000);
    await create("b").catch(() => undefined); // refused: the API server is down
    await cluster.startApiServer();
    await waitFor("a second complete list", () => relists === 2, 60_000);
    await create("b");
    await waitFor("add:b", () => seen.includes("add:b"), 30_000);
    assert.deepEqual(
      informer
        .list("inf")
        .map((o) => o.metadata.name)
        .sort(),
      ["a", "b"],
    );
  });

  it("keeps what its transform leaves, and finds objects by namespace and by index", async () => {
    const path = (ns: string) => collectionPath(configMaps, ns);
    for (const ns of ["idx-a", "idx-b"]) {
      await client.apply(
        `/api/v1/namespaces/${ns}`,
        { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
        "t",
      );
    }
    const cm = (ns: string, name: string, team: string) =>
      client.apply(
        `${path(ns)}/${name}`,
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name, labels: { team } }, data: { big: "x".repeat(1000) } },
        "t",
      );
    await cm("idx-a", "one", "red");
    const indexed = new Informer<KubeObject & { data?: unknown }>({
      name: "configmaps-indexed",
      client,
      path: collectionPath(configMaps),
      labelSelector: "team",
      log: createLogger("informer-test"),
      transform: (o) => {
        delete o.data;
        return o;
      },
    });
    indexed.addIndex("team", (o) => o.metadata.labels?.team);
    indexed.start();
    try {
      await indexed.waitForSync();
      await cm("idx-b", "two", "red");
      await cm("idx-b", "three", "blue");
      await waitFor("three objects", () => indexed.list().length === 3);
      const names = (objs: KubeObject[]) => objs.map((o) => o.metadata.name).sort();
      assert.deepEqual(names(indexed.list("idx-b")), ["three", "two"]);
      assert.deepEqual(names(indexed.byIndex("team", "red")), ["one", "two"]);
      assert.equal(indexed.get("idx-a", "one")?.data, undefined, "the transform ran on the list");
      assert.equal(indexed.get("idx-b", "two")?.data, undefined, "and on the watch");
      assert.equal(indexed.get("idx-a", "one")?.metadata.managedFields, undefined);
      // A changed index value moves the object; a deleted one leaves every index.
      await cm("idx-b", "two", "blue");
      await waitFor("two moved to blue", () => indexed.byIndex("team", "blue").length === 2);
      assert.deepEqual(names(indexed.byIndex("team", "red")), ["one"]);
      await client.delete(`${path("idx-a")}/one`);
      await waitFor("one gone", () => indexed.list().length === 2);
      assert.deepEqual(indexed.byIndex("team", "red"), []);
      assert.deepEqual(indexed.list("idx-a"), []);
    } finally {
      await indexed.stop();
    }
  });
});
