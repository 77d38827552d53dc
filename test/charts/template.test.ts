// The charts as helm renders them: lint with default and other values, the schema's refusals, and
// what each value turns into (no cluster needed; test/charts/cluster.test.ts applies them to one).
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump, load, loadAll } from "js-yaml";
import {
  agentBase,
  agentChart,
  cloudChart,
  helm,
  type K8sObject,
  kubeVersion,
  root,
  runHelm,
  template,
  valuesFile,
} from "./helpers.ts";

const nonDefaultCloud = {
  operator: {
    replicas: 3,
    maxStreams: 50,
    streamTtlAfterFinished: "1h30m",
    extraArgs: ["--resync-period=5m"],
    leaderElection: { leaseDuration: "20s" },
    relay: { allowedExposures: ["ClusterIP", "LoadBalancer"], maxCpu: "2", maxMemory: "1Gi" },
  },
  hub: {
    service: { type: "LoadBalancer", loadBalancerSourceRanges: ["203.0.113.0/24"], externalTrafficPolicy: "Local" },
    dnsNames: ["hub.example.com"],
  },
  serviceMonitor: { enabled: true, labels: { release: "prom" } },
  networkPolicy: { namespaces: ["factory-1", "factory-2"] },
  dashboard: { namespace: "monitoring" },
  crds: { keep: false },
  podDisruptionBudget: { maxUnavailable: 2 },
};

const gatewayOn = {
  gateway: {
    enabled: true,
    relayDomain: "relay.example.com",
    hubName: "hub.example.com",
    routes: { "legacy.example.com": "10.0.0.9:8443" },
    service: { type: "NodePort", nodePort: 30443 },
  },
};

async function lint(chart: string, values: object): Promise<void> {
  const r = await runHelm(["lint", "--strict", chart, "-f", valuesFile(values), "--kube-version", kubeVersion]);
  assert.equal(r.code, 0, `helm lint failed:\n${r.stdout}\n${r.stderr}`);
}

async function refused(chart: string, values: object, pattern: RegExp): Promise<void> {
  const r = await runHelm(["template", "x", chart, "-f", valuesFile(values), "--kube-version", kubeVersion]);
  assert.notEqual(r.code, 0, `helm accepted ${JSON.stringify(values)}`);
  assert.match(r.stderr, pattern);
}

function container(obj: K8sObject, name: string) {
  const c = obj.spec.template.spec.containers.find((x: { name: string }) => x.name === name);
  assert.ok(c, `${obj.kind} ${obj.metadata.name} has no container ${name}`);
  return c;
}

function assertLockedDown(sc: Record<string, unknown>, what: string) {
  assert.equal(sc.runAsNonRoot, true, `${what}: runAsNonRoot`);
  assert.equal(sc.runAsUser, 65532, `${what}: runAsUser`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${what}: readOnlyRootFilesystem`);
  assert.equal(sc.allowPrivilegeEscalation, false, `${what}: allowPrivilegeEscalation`);
  assert.deepEqual(sc.capabilities, { drop: ["ALL"] }, `${what}: capabilities`);
}

describe("charts: helm lint and helm template", function () {
  // The first call may build helm from Go modules (minutes); later calls take well under a second.
  this.timeout(1_200_000);
  before(async () => {
    await helm();
  });

  describe("lint", () => {
    it("cloud chart, default values", () => lint(cloudChart, {}));
    it("cloud chart, non-default values", () => lint(cloudChart, nonDefaultCloud));
    it("cloud chart, with the gateway", () => lint(cloudChart, gatewayOn));
    it("agent chart, daemonset mode with hostNetwork", () =>
      lint(agentChart, { ...agentBase, daemonset: { hostNetwork: true } }));
    it("agent chart, sidecar mode with a PVC", () =>
      lint(agentChart, {
        ...agentBase,
        mode: "sidecar",
        device: { namespace: "factory-1", name: "pump-7" },
        state: { type: "persistentVolumeClaim" },
        sidecar: { containers: [{ name: "plc", image: "example/plc:1" }] },
      }));
  });

  describe("values.schema.json refuses bad values with a message", () => {
    it("cloud: an unknown hub Service type", () =>
      refused(cloudChart, { hub: { service: { type: "Public" } } }, /hub\.service\.type|value must be one of/));
    it("cloud: zero replicas", () => refused(cloudChart, { operator: { replicas: 0 } }, /replicas/));
    it("cloud: a misspelt key", () => refused(cloudChart, { serviceMonitr: { enabled: true } }, /serviceMonitr/));
    it("cloud: an exposure streams cannot have", () =>
      refused(cloudChart, { operator: { relay: { allowedExposures: ["Ingress"] } } }, /allowedExposures/));
    it("cloud: a duration that is not one", () =>
      refused(cloudChart, { operator: { leaderElection: { leaseDuration: "15 seconds" } } }, /leaseDuration/));
    it("cloud: the gateway without a relay domain", () =>
      refused(cloudChart, { gateway: { enabled: true } }, /gateway\.relayDomain is required when gateway\.enabled/));
    it("cloud: a gateway relay domain that is not a DNS name", () =>
      refused(cloudChart, { gateway: { enabled: true, relayDomain: "Relay_Example" } }, /relayDomain/));
    it("cloud: gateway API mode without the Gateway", () =>
      refused(
        cloudChart,
        { gateway: { enabled: true, mode: "gatewayAPI", relayDomain: "relay.example.com" } },
        /gateway\.gatewayAPI\.parentRef\.namespace and \.name are required/,
      ));
    it("cloud: an unknown gateway mode", () =>
      refused(cloudChart, { gateway: { enabled: true, mode: "ingress", relayDomain: "relay.example.com" } }, /mode/));
    it("cloud: a gateway address without a port", () =>
      refused(
        cloudChart,
        { gateway: { enabled: true, relayDomain: "relay.example.com", address: "gw.example.com" } },
        /address/,
      ));
    it("agent: an unknown mode", () => refused(agentChart, { ...agentBase, mode: "pod" }, /mode/));
    it("agent: an allow-list entry without a port", () =>
      refused(agentChart, { ...agentBase, services: { ssh: "localhost" } }, /services/));
    it("agent: no hub address", () =>
      refused(agentChart, { ...agentBase, hub: { ...agentBase.hub, address: "" } }, /hub\.address is required/));
    it("agent: no enrolment token and no existing Secret", () =>
      refused(
        agentChart,
        { ...agentBase, enrollment: { token: "" } },
        /enrollment\.token or enrollment\.existingSecret/,
      ));
    it("agent: sidecar mode without a device name", () =>
      refused(agentChart, { ...agentBase, mode: "sidecar" }, /device\.name is required in sidecar and embedded modes/));
  });

  describe("cloud chart", () => {
    it("default values: 2 operator replicas with leader election, non-root, read-only, probes, resources", async () => {
      const r = await template(cloudChart, {});
      const deploy = r.one("Deployment");
      assert.equal(deploy.spec.replicas, 2);
      assert.equal(deploy.metadata.namespace, "devicestreams-system");
      const pod = deploy.spec.template.spec;
      assert.equal(pod.serviceAccountName, "devicestreams-operator");
      assert.equal(pod.securityContext.runAsNonRoot, true);
      const c = container(deploy, "operator");
      assert.equal(c.image, "ghcr.io/devicestreams/devicestreams:0.1.0");
      assert.equal(c.args[0], "operator");
      for (const arg of [
        "--leader-elect=true",
        "--namespace=devicestreams-system",
        "--metrics-listen=0.0.0.0:9090",
        "--relay-image=ghcr.io/devicestreams/devicestreams:0.1.0",
        // What a stream may ask for: no public exposure, modest relays, unless the values say otherwise.
        "--relay-exposures=ClusterIP",
        "--relay-max-cpu=1",
        "--relay-max-memory=512Mi",
        "--hub-listen=0.0.0.0:8444",
        // The certificate names the hub Service however an agent in the cluster writes it.
        "--hub-dns-names=devicestreams-hub,devicestreams-hub.devicestreams-system,devicestreams-hub.devicestreams-system.svc," +
          "devicestreams-hub.devicestreams-system.svc.cluster.local,localhost",
        // Relays reach the hub for access reviews through its Service.
        "--relay-access-review-address=devicestreams-hub.devicestreams-system.svc:8444",
      ]) {
        assert.ok(c.args.includes(arg), `operator args lack ${arg}: ${c.args.join(" ")}`);
      }
      assertLockedDown(c.securityContext, "operator container");
      assert.deepEqual(c.livenessProbe.httpGet, { path: "/healthz", port: "metrics" });
      assert.deepEqual(c.readinessProbe.httpGet, { path: "/readyz", port: "metrics" });
      assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
      assert.deepEqual(
        c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]),
        [
          ["hub", 8444],
          ["metrics", 9090],
        ],
      );
      // The only writable path is an emptyDir.
      assert.deepEqual(c.volumeMounts, [{ name: "tmp", mountPath: "/tmp" }]);

      const hub = r.one("Service", "devicestreams-hub");
      assert.equal(hub.spec.type, "ClusterIP");
      assert.deepEqual(hub.spec.ports[0], { name: "hub", port: 8444, targetPort: "hub", protocol: "TCP" });
      assert.deepEqual(hub.spec.selector, deploy.spec.selector.matchLabels);
      const metrics = r.one("Service", "ds-devicestreams-metrics");
      assert.equal(metrics.spec.ports[0].targetPort, "metrics");

      const pdb = r.one("PodDisruptionBudget");
      assert.equal(pdb.spec.maxUnavailable, 1);
      assert.deepEqual(pdb.spec.selector.matchLabels, deploy.spec.selector.matchLabels);
      // Relay Pods share the name label but never match the operator's selector.
      assert.equal(deploy.spec.selector.matchLabels["app.kubernetes.io/component"], "operator");

      assert.equal(r.find("ServiceMonitor").length, 0);
      const test = r.one("Pod");
      assert.equal(test.metadata.annotations?.["helm.sh/hook"], "test");
      assert.match(
        test.spec.containers[0].command.join(" "),
        /ds-devicestreams-metrics\.devicestreams-system\.svc:9090\/readyz/,
      );
      assertLockedDown(test.spec.containers[0].securityContext, "test Pod");
    });

    it("non-default values reach the manifests", async () => {
      const r = await template(cloudChart, nonDefaultCloud, { apiVersions: ["monitoring.coreos.com/v1"] });
      const deploy = r.one("Deployment");
      assert.equal(deploy.spec.replicas, 3);
      const args: string[] = container(deploy, "operator").args;
      for (const a of [
        "--max-streams=50",
        "--stream-ttl-after-finished=1h30m",
        "--resync-period=5m",
        "--lease-duration=20s",
        "--relay-exposures=ClusterIP,LoadBalancer",
        "--relay-max-cpu=2",
        "--relay-max-memory=1Gi",
      ]) {
        assert.ok(args.includes(a), `args lack ${a}`);
      }
      const dnsNames = args
        .find((a) => a.startsWith("--hub-dns-names="))
        ?.split("=")[1]
        ?.split(",");
      assert.ok(dnsNames?.includes("hub.example.com"), `--hub-dns-names lacks hub.example.com: ${dnsNames}`);
      const hub = r.one("Service", "devicestreams-hub");
      assert.equal(hub.spec.type, "LoadBalancer");
      assert.deepEqual(hub.spec.loadBalancerSourceRanges, ["203.0.113.0/24"]);
      assert.equal(hub.spec.externalTrafficPolicy, "Local");
      assert.equal(r.one("PodDisruptionBudget").spec.maxUnavailable, 2);
      assert.deepEqual(
        r.find("NetworkPolicy").map((n) => n.metadata.namespace),
        ["factory-1", "factory-2"],
      );
      assert.equal(r.one("ConfigMap").metadata.namespace, "monitoring");
      assert.equal(r.one("ServiceMonitor").metadata.labels?.release, "prom");
      for (const crd of r.find("CustomResourceDefinition")) {
        assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], undefined);
      }
    });

    it("the gateway is off by default", async () => {
      const r = await template(cloudChart, {});
      assert.equal(r.find("Deployment").length, 1);
      const args: string[] = container(r.one("Deployment"), "operator").args;
      assert.ok(!args.some((a) => a.startsWith("--gateway-relay-domain")), args.join(" "));
    });

    it("the gateway: 2 replicas, a PDB, its Service, no API token, routes to relays and the hub", async () => {
      const r = await template(cloudChart, gatewayOn);
      const deploy = r.one("Deployment", "ds-devicestreams-gateway");
      assert.equal(deploy.spec.replicas, 2);
      assert.equal(deploy.spec.template.spec.automountServiceAccountToken, false);
      const c = container(deploy, "gateway");
      assertLockedDown(c.securityContext, "gateway container");
      assert.equal(c.args[0], "gateway");
      for (const arg of [
        "--listen=0.0.0.0:8443",
        "--relay-domain=relay.example.com",
        "--relay-upstream={stream}-relay.{namespace}.svc.cluster.local:8443",
        "--route=hub.example.com=devicestreams-hub.devicestreams-system.svc.cluster.local:8444",
        "--route=legacy.example.com=10.0.0.9:8443",
      ]) {
        assert.ok(c.args.includes(arg), `gateway args lack ${arg}: ${c.args.join(" ")}`);
      }
      assert.deepEqual(c.readinessProbe.httpGet, { path: "/readyz", port: "metrics" });
      const svc = r.one("Service", "ds-devicestreams-gateway");
      assert.equal(svc.spec.type, "NodePort");
      assert.deepEqual(svc.spec.ports[0], {
        name: "tls",
        port: 443,
        targetPort: "tls",
        protocol: "TCP",
        nodePort: 30443,
      });
      assert.deepEqual(svc.spec.selector, deploy.spec.selector.matchLabels);
      const pdb = r.one("PodDisruptionBudget", "ds-devicestreams-gateway");
      assert.equal(pdb.spec.maxUnavailable, 1);
      assert.deepEqual(pdb.spec.selector.matchLabels, deploy.spec.selector.matchLabels);
      // Neither the operator's selector nor its PDB catch gateway Pods, nor the other way round.
      const operator = r.one("Deployment", "ds-devicestreams-operator");
      assert.notDeepEqual(operator.spec.selector.matchLabels, deploy.spec.selector.matchLabels);
      // The operator lists the gateway name in relay certificates; the hub's certificate lists its name.
      const opArgs: string[] = container(operator, "operator").args;
      assert.ok(opArgs.includes("--gateway-relay-domain=relay.example.com"), opArgs.join(" "));
      assert.match(opArgs.find((a) => a.startsWith("--hub-dns-names="))!, /,hub\.example\.com$/);
    });

    it("the built-in gateway's address goes to the operator, which then publishes it", async () => {
      const r = await template(cloudChart, { gateway: { ...gatewayOn.gateway, address: "gw.example.com:443" } });
      const opArgs: string[] = container(r.one("Deployment", "ds-devicestreams-operator"), "operator").args;
      assert.ok(opArgs.includes("--gateway-address=gw.example.com:443"), opArgs.join(" "));
      assert.ok(!opArgs.some((a) => a.startsWith("--gateway-api-parent")), opArgs.join(" "));
    });

    it("gateway API mode: the operator makes TLSRoutes on the named Gateway; no built-in gateway", async () => {
      const values = {
        gateway: {
          enabled: true,
          mode: "gatewayAPI",
          relayDomain: "relay.example.com",
          address: "gw.example.com:443",
          gatewayAPI: { parentRef: { namespace: "gateways", name: "public", sectionName: "tls" } },
        },
      };
      await lint(cloudChart, values);
      const r = await template(cloudChart, values);
      assert.equal(r.find("Deployment").length, 1, "only the operator");
      assert.equal(r.find("Service").filter((s) => s.metadata.name.endsWith("-gateway")).length, 0);
      const opArgs: string[] = container(r.one("Deployment"), "operator").args;
      for (const arg of [
        "--gateway-relay-domain=relay.example.com",
        "--gateway-address=gw.example.com:443",
        "--gateway-api-parent=gateways/public/tls",
      ]) {
        assert.ok(opArgs.includes(arg), `operator args lack ${arg}: ${opArgs.join(" ")}`);
      }
      const noSection = await template(cloudChart, {
        gateway: { ...values.gateway, gatewayAPI: { parentRef: { namespace: "gateways", name: "public" } } },
      });
      const args: string[] = container(noSection.one("Deployment"), "operator").args;
      assert.ok(args.includes("--gateway-api-parent=gateways/public"), args.join(" "));
    });

    it("gateway API mode with hubName: one TLSRoute for the hub, in the version the cluster serves", async () => {
      const values = {
        gateway: {
          enabled: true,
          mode: "gatewayAPI",
          relayDomain: "relay.example.com",
          hubName: "hub.example.com",
          gatewayAPI: { parentRef: { namespace: "gateways", name: "public", sectionName: "tls" } },
        },
      };
      await assert.rejects(
        template(cloudChart, values),
        /gateway\.hubName in gatewayAPI mode needs the Gateway API's TLSRoute/,
      );
      const r = await template(cloudChart, values, {
        apiVersions: ["gateway.networking.k8s.io/v1alpha2/TLSRoute", "gateway.networking.k8s.io/v1/TLSRoute"],
      });
      const route = r.one("TLSRoute", "devicestreams-hub");
      assert.equal(route.apiVersion, "gateway.networking.k8s.io/v1");
      assert.equal(route.metadata.namespace, "devicestreams-system");
      assert.deepEqual(route.spec.hostnames, ["hub.example.com"]);
      assert.deepEqual(route.spec.parentRefs, [
        {
          group: "gateway.networking.k8s.io",
          kind: "Gateway",
          namespace: "gateways",
          name: "public",
          sectionName: "tls",
        },
      ]);
      const svc = r.one("Service", "devicestreams-hub");
      assert.deepEqual(route.spec.rules[0].backendRefs, [
        { group: "", kind: "Service", name: "devicestreams-hub", port: svc.spec.ports[0].port },
      ]);
      const older = await template(cloudChart, values, {
        apiVersions: ["gateway.networking.k8s.io/v1alpha2/TLSRoute"],
      });
      assert.equal(older.one("TLSRoute").apiVersion, "gateway.networking.k8s.io/v1alpha2");
      // The hub's certificate lists the name agents dial through the Gateway.
      const args: string[] = container(r.one("Deployment"), "operator").args;
      assert.ok(
        args.some((a) => a.startsWith("--hub-dns-names=") && a.includes("hub.example.com")),
        args.join(" "),
      );
      const without = await template(cloudChart, { gateway: { ...values.gateway, hubName: "" } });
      assert.equal(without.find("TLSRoute").length, 0);
    });

    it("the gateway's Service is a LoadBalancer by default", async () => {
      const r = await template(cloudChart, { gateway: { enabled: true, relayDomain: "relay.example.com" } });
      const svc = r.one("Service", "ds-devicestreams-gateway");
      assert.equal(svc.spec.type, "LoadBalancer");
      assert.equal(svc.spec.ports[0].port, 443);
      assert.equal(svc.spec.externalTrafficPolicy, "Local", "clients' addresses reach the per-source cap");
      const args: string[] = container(r.one("Deployment", "ds-devicestreams-gateway"), "gateway").args;
      assert.ok(!args.some((a) => a.startsWith("--route=")), "no hub route without gateway.hubName");
    });

    it("one replica gets no PodDisruptionBudget (it could never be drained)", async () => {
      const r = await template(cloudChart, { operator: { replicas: 1 } });
      assert.equal(r.find("PodDisruptionBudget").length, 0);
    });

    it("ServiceMonitor and PodMonitor only when enabled and monitoring.coreos.com/v1 is served", async () => {
      const api = ["monitoring.coreos.com/v1"];
      const both = await template(cloudChart, { serviceMonitor: { enabled: true } }, { apiVersions: api });
      const sm = both.one("ServiceMonitor");
      assert.equal(sm.spec.endpoints[0].port, "metrics");
      assert.deepEqual(
        sm.spec.selector.matchLabels,
        both.one("Service", "ds-devicestreams-metrics").metadata.labels && {
          "app.kubernetes.io/name": "devicestreams",
          "app.kubernetes.io/instance": "ds",
          "app.kubernetes.io/component": "metrics",
        },
      );
      const pm = both.one("PodMonitor");
      assert.deepEqual(pm.spec.namespaceSelector, { any: true });
      assert.equal(pm.spec.podMetricsEndpoints[0].port, "metrics");
      const noApi = await template(cloudChart, { serviceMonitor: { enabled: true } });
      assert.equal(noApi.find("ServiceMonitor").length + noApi.find("PodMonitor").length, 0);
      const notEnabled = await template(cloudChart, {}, { apiVersions: api });
      assert.equal(notEnabled.find("ServiceMonitor").length + notEnabled.find("PodMonitor").length, 0);
      const noRelays = await template(
        cloudChart,
        { serviceMonitor: { enabled: true, relays: false } },
        { apiVersions: api },
      );
      assert.equal(noRelays.find("ServiceMonitor").length, 1);
      assert.equal(noRelays.find("PodMonitor").length, 0);
    });

    it("the monitors label relay series with the stream and device, and keep the per-stream namespace", async () => {
      const api = ["monitoring.coreos.com/v1"];
      const r = await template(cloudChart, { serviceMonitor: { enabled: true } }, { apiVersions: api });
      // The operator's per-stream families carry the stream's namespace, which must not become exported_namespace.
      assert.equal(r.one("ServiceMonitor").spec.endpoints[0].honorLabels, true);
      const relabel = r.one("PodMonitor").spec.podMetricsEndpoints[0].relabelings;
      assert.deepEqual(relabel, [
        { sourceLabels: ["__meta_kubernetes_pod_label_devicestreams_io_stream"], targetLabel: "devicestream" },
        { sourceLabels: ["__meta_kubernetes_pod_annotation_devicestreams_io_device"], targetLabel: "device" },
      ]);
    });

    it("the PrometheusRule is files/alerts.yaml, only when enabled and monitoring.coreos.com/v1 is served", async () => {
      const api = ["monitoring.coreos.com/v1"];
      const values = { prometheusRule: { enabled: true, labels: { release: "prom" } } };
      const r = await template(cloudChart, values, { apiVersions: api });
      const rule = r.one("PrometheusRule");
      assert.equal(rule.metadata.labels?.release, "prom");
      const file = load(readFileSync(join(root, "charts/devicestreams/files/alerts.yaml"), "utf8"));
      assert.deepEqual(rule.spec, file);
      const spec = rule.spec as { groups: Array<{ rules: unknown[] }> };
      assert.ok(spec.groups.flatMap((g) => g.rules).length >= 10);
      assert.equal((await template(cloudChart, values)).find("PrometheusRule").length, 0);
      assert.equal((await template(cloudChart, {}, { apiVersions: api })).find("PrometheusRule").length, 0);
    });

    it("the CRDs are crds/ exactly, with helm.sh/resource-policy: keep; crds.install=false leaves them out", async () => {
      const r = await template(cloudChart, {});
      const files = readdirSync(join(root, "crds")).filter((f) => f.endsWith(".yaml"));
      assert.equal(r.find("CustomResourceDefinition").length, files.length);
      for (const f of files) {
        const source = load(readFileSync(join(root, "crds", f), "utf8")) as K8sObject;
        const rendered = r.one("CustomResourceDefinition", source.metadata.name);
        assert.deepEqual(rendered.spec, source.spec, `${f}: the rendered spec differs from the source`);
        assert.equal(rendered.metadata.annotations?.["helm.sh/resource-policy"], "keep");
        for (const [k, v] of Object.entries(source.metadata.labels ?? {}))
          assert.equal(rendered.metadata.labels?.[k], v);
      }
      const without = await template(cloudChart, { crds: { install: false } });
      assert.equal(without.find("CustomResourceDefinition").length, 0);
    });

    it("the RBAC is operator/rbac.yaml as is, in the release namespace", async () => {
      const r = await template(cloudChart, {}, { namespace: "ops" });
      const source = loadAll(readFileSync(join(root, "operator/rbac.yaml"), "utf8")) as K8sObject[];
      for (const obj of source) {
        const rendered = r.one(obj.kind, obj.metadata.name);
        const expected = JSON.parse(JSON.stringify(obj).replaceAll('"devicestreams-system"', '"ops"'));
        assert.deepEqual(rendered, expected, `${obj.kind} ${obj.metadata.name} differs: run \`npm run generate\``);
      }
      assert.equal(r.one("Deployment").spec.template.spec.serviceAccountName, r.one("ServiceAccount").metadata.name);
    });

    it("the operator puts a NetworkPolicy next to every relay, wherever its stream is; metricsNamespaces may scrape", async () => {
      const args = (r: Awaited<ReturnType<typeof template>>) =>
        r.one("Deployment").spec.template.spec.containers[0].args as string[];
      const byDefault = args(await template(cloudChart, {}));
      assert.ok(byDefault.includes("--relay-network-policy=true"));
      assert.ok(!byDefault.some((a) => a.startsWith("--relay-metrics-namespaces")));
      const set = args(await template(cloudChart, { networkPolicy: { metricsNamespaces: ["monitoring", "obs"] } }));
      assert.ok(set.includes("--relay-metrics-namespaces=monitoring,obs"));
      const off = args(await template(cloudChart, { networkPolicy: { perRelay: false } }));
      assert.ok(off.includes("--relay-network-policy=false"));
    });

    it("the relay NetworkPolicy: gRPC 8443 from anywhere, metrics 9090 from the operator only, no egress", async () => {
      const r = await template(cloudChart, {});
      const np = r.one("NetworkPolicy");
      assert.deepEqual(np.spec.podSelector.matchLabels, {
        "app.kubernetes.io/component": "relay",
        "app.kubernetes.io/managed-by": "devicestreams-operator",
      });
      assert.deepEqual(np.spec.policyTypes, ["Ingress", "Egress"]);
      assert.deepEqual(np.spec.egress, []);
      const [grpc, metrics] = np.spec.ingress;
      assert.deepEqual(grpc, { ports: [{ port: 8443, protocol: "TCP" }] });
      assert.deepEqual(metrics.ports, [{ port: 9090, protocol: "TCP" }]);
      assert.deepEqual(metrics.from, [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "devicestreams-system" } },
          podSelector: { matchLabels: r.one("Deployment").spec.selector.matchLabels },
        },
      ]);
    });

    it("the Grafana dashboard ConfigMap carries grafana_dashboard and the dashboard JSON", async () => {
      const cm = (await template(cloudChart, {})).one("ConfigMap");
      assert.equal(cm.metadata.labels?.grafana_dashboard, "1");
      const file = readFileSync(join(cloudChart, "dashboards/devicestreams.json"), "utf8");
      assert.deepEqual(JSON.parse(cm.data["devicestreams.json"]), JSON.parse(file));
      const off = await template(cloudChart, { dashboard: { enabled: false } });
      assert.equal(off.find("ConfigMap").length, 0);
    });
  });

  describe("agent chart", () => {
    it("daemonset mode: one device per node, allow-list ConfigMap, token Secret, non-root, limits", async () => {
      const r = await template(agentChart, agentBase, { namespace: "edge" });
      assert.equal(r.find("Deployment").length, 0);
      const ds = r.one("DaemonSet");
      const pod = ds.spec.template.spec;
      assert.equal(pod.hostNetwork, undefined);
      assert.equal(pod.automountServiceAccountToken, false);
      const c = container(ds, "devicestreams-agent");
      assert.deepEqual(c.args, [
        "agent",
        "--hub=hub.example.com:8444",
        "--hub-ca=/etc/devicestreams/hub/ca.crt",
        "--device=factory-1/$(NODE_NAME)",
        "--enrollment-token-file=/etc/devicestreams/enrollment/token",
        "--state-dir=/var/lib/devicestreams-agent",
        "--config=/etc/devicestreams/agent/config.json",
        "--metrics-listen=0.0.0.0:9091",
      ]);
      assert.deepEqual(c.env.find((e: { name: string }) => e.name === "NODE_NAME").valueFrom, {
        fieldRef: { fieldPath: "spec.nodeName" },
      });
      assertLockedDown(c.securityContext, "agent container");
      assert.ok(c.resources.limits.cpu && c.resources.limits.memory, "agent resource limits");
      assert.deepEqual(c.readinessProbe.httpGet, { path: "/readyz", port: "agent-metrics" });

      const config = r.one("ConfigMap");
      assert.deepEqual(JSON.parse(config.data["config.json"]), { services: { ssh: "127.0.0.1:22" } });
      const secrets = r.find("Secret");
      const token = secrets.find((s) => s.data.token);
      assert.equal(Buffer.from(token!.data.token, "base64").toString(), "enrol-token-123");
      const state = pod.volumes.find((v: { name: string }) => v.name === "agent-state");
      assert.deepEqual(state.hostPath, { path: "/var/lib/devicestreams-agent", type: "DirectoryOrCreate" });
      // hostPath folders are root-owned: only the init container runs as root, with CHOWN/FOWNER only.
      const init = pod.initContainers[0];
      assert.equal(init.securityContext.runAsUser, 0);
      assert.deepEqual(init.securityContext.capabilities, { drop: ["ALL"], add: ["CHOWN", "FOWNER"] });
    });

    it("daemonset mode with hostNetwork reaches the node's own services", async () => {
      const r = await template(agentChart, { ...agentBase, daemonset: { hostNetwork: true } });
      const pod = r.one("DaemonSet").spec.template.spec;
      assert.equal(pod.hostNetwork, true);
      assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
    });

    it("sidecar mode: the user's workload plus the agent, one replica, Recreate, state on a kept PVC", async () => {
      const r = await template(agentChart, {
        ...agentBase,
        mode: "sidecar",
        device: { namespace: "factory-1", name: "pump-7" },
        services: { web: "127.0.0.1:8080", modbus: "127.0.0.1:502" },
        state: { type: "persistentVolumeClaim" },
        sidecar: { containers: [{ name: "plc", image: "example/plc:1", ports: [{ containerPort: 8080 }] }] },
      });
      assert.equal(r.find("DaemonSet").length, 0);
      const deploy = r.one("Deployment");
      assert.equal(deploy.spec.replicas, 1);
      assert.equal(deploy.spec.strategy.type, "Recreate");
      const names = deploy.spec.template.spec.containers.map((c: { name: string }) => c.name);
      assert.deepEqual(names, ["plc", "devicestreams-agent"]);
      assert.ok(container(deploy, "devicestreams-agent").args.includes("--device=factory-1/pump-7"));
      assert.equal(deploy.spec.template.spec.initContainers, undefined);
      const pvc = r.one("PersistentVolumeClaim");
      assert.equal(pvc.metadata.annotations?.["helm.sh/resource-policy"], "keep");
      const state = deploy.spec.template.spec.volumes.find((v: { name: string }) => v.name === "agent-state");
      assert.equal(state.persistentVolumeClaim.claimName, pvc.metadata.name);
      assert.deepEqual(JSON.parse(r.one("ConfigMap").data["config.json"]), {
        services: { modbus: "127.0.0.1:502", web: "127.0.0.1:8080" },
      });
    });

    it("embedded mode: a parent chart adds the agent's container and volumes to its own Pod", async () => {
      // A chart of the user's own, with this chart as a dependency (alias agent), as docs/helm.md shows.
      const parent = mkdtempSync(join(tmpdir(), "ds-parent-"));
      try {
        mkdirSync(join(parent, "templates"));
        cpSync(agentChart, join(parent, "charts/devicestreams-agent"), { recursive: true });
        writeFileSync(
          join(parent, "Chart.yaml"),
          dump({
            apiVersion: "v2",
            name: "pump",
            version: "1.0.0",
            dependencies: [{ name: "devicestreams-agent", version: "0.1.0", alias: "agent" }],
          }),
        );
        writeFileSync(
          join(parent, "templates/deployment.yaml"),
          [
            "apiVersion: apps/v1",
            "kind: Deployment",
            "metadata: { name: pump }",
            "spec:",
            "  selector: { matchLabels: { app: pump } }",
            "  template:",
            "    metadata: { labels: { app: pump } }",
            "    spec:",
            "      containers:",
            "        - { name: app, image: example/app:1 }",
            '        {{- include "devicestreams-agent.container" .Subcharts.agent | nindent 8 }}',
            "      volumes:",
            '        {{- include "devicestreams-agent.volumes" .Subcharts.agent | nindent 8 }}',
            "",
          ].join("\n"),
        );
        const agent = { ...agentBase, mode: "embedded", device: { namespace: "factory-1", name: "pump-7" } };
        const r = await template(parent, { agent: { ...agent, state: { type: "persistentVolumeClaim" } } });
        assert.equal(r.find("DaemonSet").length, 0);
        const deploy = r.one("Deployment", "pump");
        assert.deepEqual(
          deploy.spec.template.spec.containers.map((c: { name: string }) => c.name),
          ["app", "devicestreams-agent"],
        );
        // Every volume the helper mounts refers to an object the dependency rendered.
        const vol = (n: string) => deploy.spec.template.spec.volumes.find((v: { name: string }) => v.name === n);
        assert.equal(r.one("ConfigMap").metadata.name, vol("agent-config").configMap.name);
        assert.equal(r.one("PersistentVolumeClaim").metadata.name, vol("agent-state").persistentVolumeClaim.claimName);
        const secrets = r.find("Secret").map((x) => x.metadata.name);
        assert.ok(secrets.includes(vol("agent-enrollment").secret.secretName));
        assert.ok(secrets.includes(vol("agent-hub-ca").secret.secretName));
      } finally {
        rmSync(parent, { recursive: true, force: true });
      }
    });

    it("existing Secrets for the token and the hub CA: the chart makes none and mounts them", async () => {
      const r = await template(agentChart, {
        ...agentBase,
        hub: { address: "10.0.0.1:8444", existingSecret: "hub-ca", serverName: "hub.example.com" },
        enrollment: { existingSecret: "pump-7-enrollment", keyPerNode: true },
        state: { type: "emptyDir" },
      });
      assert.equal(r.find("Secret").length, 0);
      const pod = r.one("DaemonSet").spec.template.spec;
      const vol = (n: string) => pod.volumes.find((v: { name: string }) => v.name === n);
      assert.equal(vol("agent-enrollment").secret.secretName, "pump-7-enrollment");
      assert.equal(vol("agent-hub-ca").secret.secretName, "hub-ca");
      assert.ok(vol("agent-state").emptyDir);
      assert.equal(pod.initContainers, undefined);
      const args: string[] = container(r.one("DaemonSet"), "devicestreams-agent").args;
      assert.ok(args.includes("--enrollment-token-file=/etc/devicestreams/enrollment/$(NODE_NAME)"));
      assert.ok(args.includes("--hub-server-name=hub.example.com"));
    });
  });
});
