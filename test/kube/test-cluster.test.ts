// Proves the test control plane is the real thing: garbage collection by a real
// kube-controller-manager, data surviving an apiserver restart, RBAC really enforced.
import assert from "node:assert/strict";
import { ApiException, CoreV1Api, RbacAuthorizationV1Api, VersionApi } from "@kubernetes/client-node";
import { startTestCluster, type TestCluster } from "../helpers/kube-apiserver.ts";
import { waitFor } from "../helpers/wait.ts";

const ns = "harness";

async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

describe("test control plane", function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let core: CoreV1Api;

  before(async () => {
    cluster = await startTestCluster({ controllerManager: true });
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
  });

  after(async () => {
    await cluster?.stop();
  });

  it("serves the pinned Kubernetes version over TLS to the admin kubeconfig", async () => {
    assert.match(cluster.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    const version = await cluster.kubeConfig.makeApiClient(VersionApi).getCode();
    assert.match(version.gitVersion, /^v1\.34\.\d+$/);
    const list = await core.listNamespace();
    assert.ok(list.items.some((n) => n.metadata?.name === "kube-system"));
  });

  it("garbage-collects a ConfigMap whose owner is deleted", async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "owner" } } });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: {
          name: "dependent",
          ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata!.uid! }],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "owner" });
    await waitFor(
      "the dependent to be collected",
      async () => (await statusOf(core.readNamespacedConfigMap({ namespace: ns, name: "dependent" }))) === 404,
      60_000,
      250,
    );
  });

  it("keeps its data across an apiserver restart on the same address", async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "kept" }, data: { k: "v" } } });
    await cluster.stopApiServer();
    await assert.rejects(core.readNamespacedConfigMap({ namespace: ns, name: "kept" }), /ECONNREFUSED|fetch failed/);
    await cluster.startApiServer();
    const cm = await core.readNamespacedConfigMap({ namespace: ns, name: "kept" });
    assert.deepEqual(cm.data, { k: "v" });
  });

  it("enforces RBAC on a restricted identity", async () => {
    const asAlice = cluster.impersonate("alice", ["testers"]).makeApiClient(CoreV1Api);
    assert.equal(await statusOf(asAlice.listNamespacedConfigMap({ namespace: ns })), 403);

    const rbac = cluster.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: "read-configmaps" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "testers-read-configmaps" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "read-configmaps" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "testers" }],
      },
    });
    // RBAC reads roles through an informer: allow a moment for the binding to arrive.
    await waitFor(
      "the binding to take effect",
      async () => (await statusOf(asAlice.listNamespacedConfigMap({ namespace: ns }))) === 200,
      60_000,
      250,
    );
    // Still limited to what the Role grants: other namespaces and verbs stay forbidden.
    assert.equal(await statusOf(asAlice.listNamespacedConfigMap({ namespace: "default" })), 403);
    assert.equal(
      await statusOf(asAlice.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "nope" } } })),
      403,
    );
  });

  it("deletes a namespace and its contents", async () => {
    await core.createNamespace({ body: { metadata: { name: "doomed" } } });
    await core.createNamespacedConfigMap({ namespace: "doomed", body: { metadata: { name: "x" } } });
    await core.deleteNamespace({ name: "doomed" });
    await waitFor(
      "the namespace to be gone",
      async () => (await statusOf(core.readNamespace({ name: "doomed" }))) === 404,
      60_000,
      250,
    );
  });
});
