// The charts against a real kube-apiserver: `helm install` of the cloud chart really creates the
// CRDs (and, with a stand-in prometheus-operator API, the ServiceMonitor), every other rendering is
// checked by `kubectl apply --dry-run=server` (admission, schema and defaulting on the server), a
// sample Device and DeviceStream are applied for real, the chart's RBAC is what the operator needs,
// and `helm upgrade` / `helm uninstall` keep the CRDs and the streams in them. No kubelet runs, so no
// Pod starts: what runs in Pods is tested by test/operator and test/e2e.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump } from "js-yaml";
import { runCommand } from "../helpers/command.ts";
import { startTestCluster, type TestCluster } from "../helpers/kube-apiserver.ts";
import {
  agentBase,
  agentChart,
  cloudChart,
  helm,
  type K8sObject,
  kubectl,
  root,
  runHelm,
  template,
} from "./helpers.ts";

const ns = "devicestreams-system";
const crdNames = ["devicestreams.devicestreams.io", "devices.devicestreams.io"];

/** Just enough of prometheus-operator's API for the server to accept ServiceMonitors and PodMonitors. */
function monitoringCrd(kind: string, plural: string): object {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: "monitoring.coreos.com",
      scope: "Namespaced",
      names: { kind, plural, listKind: `${kind}List`, singular: kind.toLowerCase() },
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        },
      ],
    },
  };
}

function manifest(objects: K8sObject[]): string {
  return objects.map((o) => dump(o)).join("---\n");
}

describe("charts: on a real API server", function () {
  this.timeout(1_200_000);
  let cluster: TestCluster;
  let kc: string;
  const run = (args: string[], input?: string) => kubectl(kc, args, input);
  const helmIn = async (args: string[]) => {
    const r = await runHelm([...args, "--kubeconfig", kc]);
    assert.equal(r.code, 0, `helm ${args.join(" ")} failed:\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };
  const dryRun = async (objects: K8sObject[]) => {
    const r = await run(["apply", "--dry-run=server", "-f", "-"], manifest(objects));
    for (const o of objects) {
      assert.match(r.stdout, new RegExp(`${o.metadata.name}\\b.*\\(server dry run\\)`), `${o.kind} ${o.metadata.name}`);
    }
  };

  before(async () => {
    await helm();
    cluster = await startTestCluster();
    kc = cluster.kubeconfigPath;
    for (const n of [ns, "factory-1", "factory-2", "edge", "monitoring"]) await run(["create", "namespace", n]);
    await run(
      ["apply", "-f", "-"],
      manifest([
        monitoringCrd("ServiceMonitor", "servicemonitors") as K8sObject,
        monitoringCrd("PodMonitor", "podmonitors") as K8sObject,
      ]),
    );
    await run([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/servicemonitors.monitoring.coreos.com",
      "crd/podmonitors.monitoring.coreos.com",
    ]);
  });
  after(() => cluster?.stop());

  it("helm install creates the CRDs, the operator's objects and (the API being served) the ServiceMonitor", async () => {
    const out = await helmIn(["install", "ds", cloudChart, "-n", ns, "--set", "serviceMonitor.enabled=true"]);
    assert.match(out, /STATUS: deployed/);
    // NOTES.txt tells the next step.
    assert.match(out, /rollout status deploy\/ds-devicestreams-operator/);
    assert.match(out, /helm test ds/);
    await run(["wait", "--for=condition=Established", "--timeout=60s", ...crdNames.map((c) => `crd/${c}`)]);
    const crd = JSON.parse((await run(["get", "crd", crdNames[0]!, "-o", "json"])).stdout);
    assert.equal(crd.metadata.annotations["helm.sh/resource-policy"], "keep");
    const deploy = JSON.parse(
      (await run(["-n", ns, "get", "deploy", "ds-devicestreams-operator", "-o", "json"])).stdout,
    );
    assert.equal(deploy.spec.replicas, 2);
    await run(["-n", ns, "get", "servicemonitor/ds-devicestreams-operator", "podmonitor/ds-devicestreams-relays"]);
    await run([
      "-n",
      ns,
      "get",
      "service/devicestreams-hub",
      "service/ds-devicestreams-metrics",
      "poddisruptionbudget/ds-devicestreams-operator",
      "networkpolicy/ds-devicestreams-relays",
    ]);
  });

  it("a sample Device and DeviceStream are applied for real and come back with the API's defaults", async () => {
    await run(["-n", "factory-1", "apply", "-f", join(root, "examples/device.yaml")]);
    await run(["-n", "factory-1", "apply", "-f", join(root, "examples/devicestream.yaml")]);
    const dev = JSON.parse((await run(["-n", "factory-1", "get", "device", "pump-7", "-o", "json"])).stdout);
    assert.equal(dev.spec.disabled, false);
    const dst = JSON.parse((await run(["-n", "factory-1", "get", "dst", "pump-7-ssh", "-o", "json"])).stdout);
    assert.deepEqual(dst.spec.timeouts, { connect: "10m", idle: "15m", maxLifetime: "1h" });
    assert.equal(dst.spec.relay.exposure, "ClusterIP");
    // The whole spec is immutable: the CRD that helm installed enforces it.
    await assert.rejects(
      run(["-n", "factory-1", "patch", "dst", "pump-7-ssh", "--type=merge", "-p", '{"spec":{"service":"web"}}']),
      /immutable|cannot change|create another/i,
    );
  });

  it("the chart's RBAC lets the operator's ServiceAccount do its job and not read Secrets", async () => {
    const as = `--as=system:serviceaccount:${ns}:devicestreams-operator`;
    const can = async (args: string[]) => (await runKubectlCanI(kc, [as, ...args])).trim();
    assert.equal(
      await can(["patch", "devicestreams.devicestreams.io", "--subresource=status", "-n", "factory-1"]),
      "yes",
    );
    assert.equal(await can(["create", "pods", "-n", "factory-1"]), "yes");
    assert.equal(await can(["get", "secret/devicestreams-ca", "-n", ns]), "yes");
    assert.equal(await can(["update", "lease/devicestreams-operator", "-n", ns, "--subresource="]), "yes");
    assert.equal(await can(["get", "secrets", "-n", "factory-1"]), "no");
    assert.equal(await can(["list", "secrets", "-n", ns]), "no");
    // Enrolment tokens: changed and deleted only in the release namespace, never where Devices live.
    assert.equal(await can(["delete", "secrets", "-n", ns]), "yes");
    assert.equal(await can(["patch", "secrets", "-n", "factory-1"]), "no");
    assert.equal(await can(["delete", "secrets", "-n", "factory-1"]), "no");
    // Relays ask the hub about users; the hub asks the API server who a token is and what it may do.
    assert.equal(await can(["create", "tokenreviews.authentication.k8s.io"]), "yes");
    assert.equal(await can(["create", "subjectaccessreviews.authorization.k8s.io"]), "yes");
  });

  it("server-side dry run: the cloud chart with non-default values (LoadBalancer hub, NetworkPolicies, dashboard elsewhere)", async () => {
    const r = await template(
      cloudChart,
      {
        operator: { replicas: 3 },
        hub: {
          service: { type: "LoadBalancer", loadBalancerSourceRanges: ["203.0.113.0/24"] },
          dnsNames: ["hub.example.com"],
        },
        serviceMonitor: { enabled: true, labels: { release: "prom" } },
        networkPolicy: { namespaces: ["factory-1", "factory-2"], metricsFrom: [{ namespaceSelector: {} }] },
        dashboard: { namespace: "monitoring" },
      },
      { namespace: ns, apiVersions: ["monitoring.coreos.com/v1"] },
    );
    assert.ok(r.find("ServiceMonitor").length === 1 && r.find("NetworkPolicy").length === 2);
    await dryRun(r.objects);
  });

  it("server-side dry run: the agent chart as a DaemonSet with hostNetwork and a hostPath state dir", async () => {
    const r = await template(agentChart, { ...agentBase, daemonset: { hostNetwork: true } }, { namespace: "edge" });
    assert.equal(r.find("DaemonSet").length, 1);
    await dryRun(r.objects);
  });

  it("server-side dry run: the agent chart as a sidecar beside a workload, with a PVC", async () => {
    const r = await template(
      agentChart,
      {
        ...agentBase,
        mode: "sidecar",
        device: { namespace: "factory-1", name: "pump-7" },
        services: { web: "127.0.0.1:8080" },
        state: { type: "persistentVolumeClaim", persistentVolumeClaim: { storageClassName: "local" } },
        sidecar: {
          containers: [{ name: "web", image: "nginx:1.27", ports: [{ containerPort: 8080 }] }],
          podSecurityContext: { fsGroup: 65532 },
        },
      },
      { namespace: "edge", release: "pump-7" },
    );
    assert.equal(r.find("Deployment").length, 1);
    await dryRun(r.objects);
  });

  it("server-side dry run: the agent chart with existing Secrets and an emptyDir", async () => {
    const r = await template(
      agentChart,
      {
        ...agentBase,
        hub: { address: "hub:8444", existingSecret: "hub-ca" },
        enrollment: { existingSecret: "enrol", keyPerNode: true },
        state: { type: "emptyDir" },
      },
      { namespace: "edge", release: "node-agents" },
    );
    await dryRun(r.objects);
  });

  it("helm upgrade applies a changed CRD and keeps the streams; helm uninstall keeps the CRDs and the streams", async () => {
    // The next chart version, with a CRD that changed: a copy of the chart with another description.
    const next = join(mkdtempSync(join(tmpdir(), "ds-chart-next-")), "devicestreams");
    cpSync(cloudChart, next, { recursive: true });
    const crdFile = join(next, "files/crds/devicestreams.io_devices.yaml");
    const changed = "An edge device (schema of the next chart version).";
    writeFileSync(
      crdFile,
      readFileSync(crdFile, "utf8").replace(
        "description: An edge device whose agent dials out to the hub.",
        `description: ${changed}`,
      ),
    );
    const out = await helmIn(["upgrade", "ds", next, "-n", ns, "--reuse-values", "--set", "operator.replicas=3"]);
    assert.match(out, /STATUS: deployed/);
    assert.match(out, /REVISION: 2/);
    const crd = JSON.parse((await run(["get", "crd", "devices.devicestreams.io", "-o", "json"])).stdout);
    assert.ok(crd.spec.versions[0].schema.openAPIV3Schema.description.startsWith(changed), "the CRD was not upgraded");
    rmSync(join(next, ".."), { recursive: true, force: true });
    await run(["-n", "factory-1", "get", "dst", "pump-7-ssh"]);
    const uninstall = await runHelm(["uninstall", "ds", "-n", ns, "--kubeconfig", kc]);
    assert.equal(uninstall.code, 0, uninstall.stderr);
    assert.match(`${uninstall.stdout}${uninstall.stderr}`, /kept due to the resource policy/);
    for (const crd of crdNames) await run(["get", "crd", crd]);
    await run(["-n", "factory-1", "get", "devicestream/pump-7-ssh", "device/pump-7"]);
    await assert.rejects(run(["-n", ns, "get", "deploy", "ds-devicestreams-operator"]), /NotFound|not found/);
  });
});

/** `kubectl auth can-i` exits 1 for "no", which is an answer here, not a failure. */
async function runKubectlCanI(kc: string, args: string[]): Promise<string> {
  const r = await runCommand("kubectl", ["--kubeconfig", kc, "auth", "can-i", ...args], { timeoutMs: 30_000 });
  if (r.code !== 0 && r.code !== 1) throw new Error(`kubectl auth can-i ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}
