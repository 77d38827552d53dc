// A real control plane with the CRDs and the operator's RBAC installed, and helpers the operator
// tests share: a stand-in kubelet that marks Pods ready through the status subresource, and an
// operator started in-process under its own ServiceAccount identity, so that every test also
// proves the RBAC rules suffice.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { loadAll } from "js-yaml";
import { fieldManager } from "../../api/constants.ts";
import { type DeviceStream, deviceResource, deviceStreamResource } from "../../api/v1alpha1.ts";
import { collectionPath, core, isNotFound, KubeClient, objectPath, type Resource } from "../../kube/client.ts";
import type { KubeObject, Pod } from "../../kube/types.ts";
import { type RunningOperator, startOperator } from "../../operator/main.ts";
import { type OperatorOptions, parseOperatorOptions } from "../../operator/options.ts";
import { createLogger } from "../../runtime/log.ts";
import { startTestCluster, type TestCluster, type TestClusterOptions } from "../helpers/kube-apiserver.ts";
import { waitFor } from "../helpers/wait.ts";

const root = join(import.meta.dirname, "../..");
export const operatorNamespace = "devicestreams-system";
export const serviceAccountUser = `system:serviceaccount:${operatorNamespace}:devicestreams-operator`;
const serviceAccountGroups = [
  "system:serviceaccounts",
  `system:serviceaccounts:${operatorNamespace}`,
  "system:authenticated",
];

export const streams: Resource = { ...deviceStreamResource };
export const devices: Resource = { ...deviceResource };

const kinds: Record<string, Resource & { namespaced: boolean }> = {
  CustomResourceDefinition: {
    group: "apiextensions.k8s.io",
    version: "v1",
    plural: "customresourcedefinitions",
    kind: "CustomResourceDefinition",
    namespaced: false,
  },
  Namespace: { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  ServiceAccount: { group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true },
  ClusterRole: {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "clusterroles",
    kind: "ClusterRole",
    namespaced: false,
  },
  ClusterRoleBinding: {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "clusterrolebindings",
    kind: "ClusterRoleBinding",
    namespaced: false,
  },
  Role: { group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", kind: "Role", namespaced: true },
  RoleBinding: {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "rolebindings",
    kind: "RoleBinding",
    namespaced: true,
  },
};

export class OperatorEnv {
  cluster!: TestCluster;
  admin!: KubeClient;
  /** The operator's ServiceAccount identity (RBAC from operator/rbac.yaml only). */
  operatorKubeConfig!: KubeConfig;
  operatorKubeconfigPath!: string;

  static async start(opts: Pick<TestClusterOptions, "auditPolicy"> = {}): Promise<OperatorEnv> {
    const env = new OperatorEnv();
    env.cluster = await startTestCluster({ controllerManager: true, ...opts });
    env.admin = new KubeClient(env.cluster.kubeConfig);
    for (const file of readdirSync(join(root, "crds")).filter((f) => f.endsWith(".yaml"))) {
      await env.applyFile(join(root, "crds", file));
    }
    await env.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: operatorNamespace } });
    await env.applyFile(join(root, "operator/rbac.yaml"));
    for (const crd of ["devicestreams.devicestreams.io", "devices.devicestreams.io"]) {
      await waitFor(`CRD ${crd} to be established`, async () => {
        const obj = await env.admin.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
          objectPath(kinds.CustomResourceDefinition!, "", crd),
        );
        return obj.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
      });
    }
    env.operatorKubeConfig = env.cluster.impersonate(serviceAccountUser, serviceAccountGroups);
    env.operatorKubeconfigPath = join(env.cluster.dataDir, "operator.kubeconfig");
    writeFileSync(env.operatorKubeconfigPath, env.operatorKubeConfig.exportConfig(), { mode: 0o600 });
    return env;
  }

  /** The Gateway API TLSRoute CRD (test/crds, Gateway API v1.7.0 standard channel: TLSRoute v1). */
  async installGatewayApi(): Promise<void> {
    await this.applyFile(join(root, "test/crds/gateway.networking.k8s.io_tlsroutes.yaml"));
    await waitFor("CRD tlsroutes.gateway.networking.k8s.io to be established", async () => {
      const obj = await this.admin.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
        objectPath(kinds.CustomResourceDefinition!, "", "tlsroutes.gateway.networking.k8s.io"),
      );
      return obj.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    });
  }

  async applyFile(path: string): Promise<void> {
    for (const doc of loadAll(readFileSync(path, "utf8"))) if (doc) await this.apply(doc as KubeObject);
  }

  async apply(obj: KubeObject): Promise<void> {
    const res = kinds[obj.kind!];
    if (!res) throw new Error(`test env cannot apply kind ${obj.kind}`);
    const base = collectionPath(res, res.namespaced ? obj.metadata.namespace : undefined);
    await this.admin.apply(`${base}/${obj.metadata.name}`, obj, "devicestreams-tests");
  }

  async namespace(name: string): Promise<string> {
    await this.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
    return name;
  }

  async createDevice(ns: string, name: string, status?: Record<string, unknown>): Promise<void> {
    const path = collectionPath(devices, ns);
    await this.admin.create(
      path,
      { apiVersion: "devicestreams.io/v1alpha1", kind: "Device", metadata: { name } },
      "tests",
    );
    if (status) {
      // As the hub: a connected report carries lastSeen, or the leader takes the session for stale at once.
      const lastSeen = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      const body = {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "Device",
        metadata: { name, namespace: ns },
        status: status.connected ? { lastSeen, ...status } : status,
      };
      await this.admin.apply(`${path}/${name}/status`, body, "devicestreams-hub");
    }
  }

  createStream(ns: string, name: string, spec: Record<string, unknown>): Promise<DeviceStream> {
    const body = { apiVersion: "devicestreams.io/v1alpha1", kind: "DeviceStream", metadata: { name }, spec };
    return this.admin.create<DeviceStream>(collectionPath(streams, ns), body, "tests");
  }

  getStream(ns: string, name: string): Promise<DeviceStream> {
    return this.admin.get<DeviceStream>(objectPath(streams, ns, name));
  }

  async gone(res: Resource, ns: string, name: string): Promise<boolean> {
    try {
      await this.admin.get(objectPath(res, ns, name));
      return false;
    } catch (err) {
      if (isNotFound(err)) return true;
      throw err;
    }
  }

  /** What a kubelet reports once the relay container passes its readiness probe. */
  async markPodReady(ns: string, name: string): Promise<void> {
    const body = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns },
      status: {
        phase: "Running",
        podIP: "10.1.0.7",
        conditions: [
          { type: "Ready", status: "True", lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z") },
          { type: "ContainersReady", status: "True" },
        ],
      },
    };
    await this.admin.apply(`${objectPath(core.pods, ns, name)}/status`, body, "test-kubelet");
  }

  getPod(ns: string, name: string): Promise<Pod> {
    return this.admin.get<Pod>(objectPath(core.pods, ns, name));
  }

  async operatorOptions(overrides: string[] = []): Promise<OperatorOptions> {
    const parsed = parseOperatorOptions([
      `--namespace=${operatorNamespace}`,
      "--metrics-listen=127.0.0.1:0",
      "--lease-duration=4s",
      "--renew-deadline=3s",
      "--retry-period=500ms",
      "--relay-image=devicestreams:test",
      // Any free port: suites and replicas never collide on the default 8444.
      "--hub-listen=127.0.0.1:0",
      ...overrides,
    ]);
    return parsed!.options;
  }

  async startOperator(overrides: string[] = []): Promise<RunningOperator> {
    const options = await this.operatorOptions(overrides);
    const operator = await startOperator(options, {
      kubeConfig: this.operatorKubeConfig,
      log: createLogger("operator"),
    });
    await waitFor("the operator to lead", () => operator.isLeader(), 30_000);
    // Its hub binds port 0 here: relay Pods are told the port, so none may be built before it.
    if (options.hubListen) await waitFor("the hub to serve", () => operator.hubPort(), 30_000);
    return operator;
  }

  async stop(): Promise<void> {
    this.admin?.close();
    await this.cluster?.stop();
  }
}

export { fieldManager };
