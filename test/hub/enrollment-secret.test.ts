// Where enrolment tokens live, against a real kube-apiserver with the operator under its own RBAC:
// in the operator's namespace, out of reach of a user who holds the plugin's Role (client/rbac.yaml)
// where the Device lives; named in the Device's status; gone once the device enrols or the Device
// is deleted; and the enrolled key's fingerprint shown for an administrator to compare.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import { type Device, deviceResource } from "../../api/v1alpha1.ts";
import { core, KubeApiError, KubeClient, objectPath } from "../../kube/client.ts";
import type { KubeList, KubeObject, Secret } from "../../kube/types.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { enrollmentFinalizer } from "../../operator/reconcile/enrollment-secret.ts";
import { defaultKeepalive } from "../../runtime/grpc-options.ts";
import { createCertificateRequest, publicKeySha256 } from "../../runtime/pki.ts";
import { HubClient } from "../../transport/hub-client.ts";
import { runCommand } from "../helpers/command.ts";
import { readEnrollmentToken } from "../helpers/enrollment.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv, operatorNamespace } from "../operator/env.ts";
import { caPem, createDevice, getDevice, hubPort } from "./hub-env.ts";

const root = join(import.meta.dirname, "../..");
const pluginUser = "mallory@example.com";

describe("hub: enrolment tokens are for administrators only", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  let user: KubeClient;
  const ns = "tenant";

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator();
    await env.namespace(ns);
    // The plugin user's ClusterRole, bound where the Devices and streams live.
    for (const doc of loadAll(readFileSync(join(root, "client/rbac.yaml"), "utf8"))) {
      if (doc) await env.apply(doc as KubeObject);
    }
    await env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "devicestreams-user", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "devicestreams-user" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: pluginUser }],
    } as KubeObject);
    // And `get` on the namespace's Secrets, as a source-token user (docs/kubectl-plugin.md) has:
    // the most a tenant is given, so the check below covers every Secret there.
    await env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "stream-secrets", namespace: ns },
      rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }],
    } as KubeObject);
    await env.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "stream-secrets", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "stream-secrets" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: pluginUser }],
    } as KubeObject);
    user = new KubeClient(env.cluster.impersonate(pluginUser, ["system:authenticated"]));
  });

  after(async () => {
    user?.close();
    await op?.stop();
    await env?.stop();
  });

  const devicePath = (name: string) => objectPath({ ...deviceResource }, ns, name);
  const forbidden = (p: Promise<unknown>) =>
    assert.rejects(p, (err: unknown) => err instanceof KubeApiError && err.status === 403);
  const enrol = async (name: string, token: string) => {
    const { csrPem } = await createCertificateRequest("device");
    const hub = new HubClient({
      address: `127.0.0.1:${await hubPort(op)}`,
      tls: { caPem: (await caPem(env)).certPem },
      keepalive: defaultKeepalive,
    });
    try {
      await hub.enroll({ token, namespace: ns, name, csrPem });
      return publicKeySha256(csrPem);
    } finally {
      hub.close();
    }
  };

  it("keeps the token in the operator's namespace, where a plugin user can read no Secret, and names it in the Device's status", async () => {
    await createDevice(env, ns, "pump");
    const at = await readEnrollmentToken(env.admin, ns, "pump");
    assert.equal(at.secretNamespace, operatorNamespace);
    assert.equal(at.secretName, "tenant.pump.enrollment");
    const secret = await env.admin.get<Secret>(objectPath(core.secrets, operatorNamespace, at.secretName));
    const device = await getDevice(env, ns, "pump");
    assert.deepEqual(
      [
        secret.metadata.labels?.["devicestreams.io/device-namespace"],
        secret.metadata.labels?.["devicestreams.io/device-name"],
        secret.metadata.labels?.["devicestreams.io/device-uid"],
      ],
      [ns, "pump", device.metadata.uid],
    );
    assert.ok(device.metadata.finalizers?.includes(enrollmentFinalizer));

    // The user may get any Secret in the tenant namespace (stream credentials): none holds the token.
    const readable = await env.admin.list<KubeList<Secret>>(`/api/v1/namespaces/${ns}/secrets`);
    for (const s of readable.items) {
      await user.get(objectPath(core.secrets, ns, s.metadata.name!));
      for (const v of Object.values(s.data ?? {})) {
        assert.ok(!Buffer.from(v, "base64").toString().includes(at.token), `Secret ${s.metadata.name} holds it`);
      }
    }
    await assert.rejects(user.get(objectPath(core.secrets, ns, "pump-enrollment")), (err: unknown) => {
      return err instanceof KubeApiError && err.status === 404;
    });
    await forbidden(user.get(objectPath(core.secrets, operatorNamespace, at.secretName)));
    await forbidden(user.list(`/api/v1/namespaces/${operatorNamespace}/secrets`));
    // It still sees where the token is, so it can tell an administrator.
    assert.equal((await user.get<Device>(devicePath("pump"))).status?.enrollment?.secretName, at.secretName);
  });

  it("deletes the token once the device enrolls, and shows the enrolled key's fingerprint", async () => {
    await createDevice(env, ns, "valve");
    const at = await readEnrollmentToken(env.admin, ns, "valve");
    const hash = await enrol("valve", at.token);
    await waitFor("the token Secret to be deleted", () =>
      env.admin.get(objectPath(core.secrets, operatorNamespace, at.secretName)).then(
        () => false,
        (err: unknown) => err instanceof KubeApiError && err.status === 404,
      ),
    );
    const device = await waitFor("the Device to let go of its token", async () => {
      const d = await getDevice(env, ns, "valve");
      return !d.status?.enrollment && !d.metadata.finalizers?.includes(enrollmentFinalizer) ? d : undefined;
    });
    assert.equal(device.metadata.annotations?.["devicestreams.io/enrollment-expires-at"], undefined);
    const wide = await runCommand(
      "kubectl",
      [`--kubeconfig=${env.cluster.kubeconfigPath}`, "get", "device", "valve", "-n", ns, "-o", "wide"],
      { timeoutMs: 30_000 },
    );
    assert.equal(wide.code, 0, wide.stderr);
    assert.match(wide.stdout, /FINGERPRINT/);
    assert.match(wide.stdout, new RegExp(hash));
  });

  it("deletes the token of a Device deleted before it enrolled, then lets the Device go", async () => {
    await createDevice(env, ns, "gone");
    const at = await readEnrollmentToken(env.admin, ns, "gone");
    await env.admin.delete(devicePath("gone"));
    await waitFor("the Device to be gone", () => env.gone({ ...deviceResource }, ns, "gone"));
    assert.ok(await env.gone(core.secrets, operatorNamespace, at.secretName), "the token Secret is left behind");
  });

  it("a Device whose token an earlier version made (no finalizer) gets a new token here at once", async () => {
    await createDevice(env, ns, "legacy");
    const first = await readEnrollmentToken(env.admin, ns, "legacy");
    // What an earlier version left: the expiry annotation, no finalizer (its token was next to the Device).
    const d = await getDevice(env, ns, "legacy");
    const i = d.metadata.finalizers!.indexOf(enrollmentFinalizer);
    await env.admin.jsonPatch(devicePath("legacy"), [{ op: "remove", path: `/metadata/finalizers/${i}` }], "tests");
    const second = await waitFor("a new token", async () => {
      const t = await readEnrollmentToken(env.admin, ns, "legacy");
      return t.token !== first.token ? t : undefined;
    });
    assert.match(second.token, /^dse2\./);
    assert.ok((await getDevice(env, ns, "legacy")).metadata.finalizers?.includes(enrollmentFinalizer));
  });
});
