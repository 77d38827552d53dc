// A DeviceStream's life against a real kube-apiserver, etcd and kube-controller-manager, with the
// operator running under the ServiceAccount identity of operator/rbac.yaml.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { finalizer } from "../../api/constants.ts";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { core, KubeApiError, KubeClient, objectPath } from "../../kube/client.ts";
import type { KubeList, KubeObject, Secret, Service } from "../../kube/types.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { networkPolicyResource } from "../../operator/relay-network-policy.ts";
import { tokenSha256 } from "../../transport/credentials.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, OperatorEnv, operatorNamespace, streams } from "./env.ts";

interface EventObj {
  reason: string;
  type: string;
  note: string;
  regarding: { name: string; uid: string };
  reportingController: string;
}

describe("operator: DeviceStream lifecycle", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator();
  });

  after(async () => {
    await op?.stop();
    await env?.stop();
  });

  const phaseOf = (ns: string, name: string, phase: string, timeoutMs = 30_000) =>
    waitFor(
      `${ns}/${name} to reach phase ${phase}`,
      async () => {
        const ds = await env.getStream(ns, name);
        return ds.status?.phase === phase ? ds : undefined;
      },
      timeoutMs,
    );
  const cond = (ds: DeviceStream, type: string) => ds.status?.conditions?.find((c) => c.type === type);
  const eventsOf = async (ns: string, name: string) =>
    (await env.admin.get<KubeList<EventObj>>(`/apis/events.k8s.io/v1/namespaces/${ns}/events`)).items.filter(
      (e) => e.regarding.name === name,
    );
  // Events are recorded without holding up the reconcile: poll for them.
  const eventWith = (ns: string, name: string, reason: string) =>
    waitFor(`Event ${reason} for ${ns}/${name}`, async () =>
      (await eventsOf(ns, name)).find((e) => e.reason === reason),
    );
  const secretOf = (ns: string, ds: DeviceStream) =>
    env.admin.get<Secret>(objectPath(core.secrets, ns, ds.status!.relay!.credentialsSecret!));
  const decode = (s: Secret, key: string) => Buffer.from(s.data![key]!, "base64").toString("utf8");

  it("creates the relay Secret, Service and Pod with owner references, labels and a locked-down spec", async () => {
    const ns = await env.namespace("create");
    await env.createDevice(ns, "edge-1");
    const created = await env.createStream(ns, "ssh-1", { device: "edge-1", service: "ssh" });
    const uid = created.metadata.uid!;
    const pod = await waitFor("the relay Pod", () => env.getPod(ns, "ssh-1-relay"));
    const ds = await phaseOf(ns, "ssh-1", "Pending");
    assert.ok(ds.metadata.finalizers?.includes(finalizer), "finalizer added");
    const service = await env.admin.get<Service>(objectPath(core.services, ns, "ssh-1-relay"));
    const secret = await waitFor("the Secret", () => secretOf(ns, ds));
    // Made before the Pod, in the stream's namespace, so the relay never runs without it.
    const policy = await env.admin.get<KubeObject & { spec: { podSelector: unknown; policyTypes: string[] } }>(
      objectPath(networkPolicyResource, ns, "ssh-1-relay"),
    );
    assert.deepEqual(policy.spec.podSelector, { matchLabels: { "devicestreams.io/stream-uid": uid } });
    assert.deepEqual(policy.spec.policyTypes, ["Ingress", "Egress"]);

    for (const obj of [pod, service, secret, policy]) {
      assert.deepEqual(obj.metadata.ownerReferences, [
        {
          apiVersion: "devicestreams.io/v1alpha1",
          kind: "DeviceStream",
          name: "ssh-1",
          uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      const l = obj.metadata.labels!;
      assert.equal(l["app.kubernetes.io/name"], "devicestreams");
      assert.equal(l["app.kubernetes.io/component"], "relay");
      assert.equal(l["app.kubernetes.io/instance"], "ssh-1");
      assert.equal(l["app.kubernetes.io/managed-by"], "devicestreams-operator");
      assert.equal(l["devicestreams.io/stream-uid"], uid);
    }
    const managers = (pod.metadata.managedFields as Array<{ manager: string; operation: string }>).map(
      (m) => `${m.manager}/${m.operation}`,
    );
    assert.ok(managers.includes("devicestreams-operator/Apply"), `server-side applied: ${managers}`);

    const spec = pod.spec as {
      automountServiceAccountToken: boolean;
      securityContext: { runAsNonRoot: boolean };
      containers: Array<{
        image: string;
        command?: string[];
        args: string[];
        securityContext: {
          readOnlyRootFilesystem: boolean;
          allowPrivilegeEscalation: boolean;
          capabilities: { drop: string[] };
        };
        readinessProbe: { httpGet: { path: string } };
        resources: { requests: Record<string, string>; limits: Record<string, string> };
      }>;
      volumes: Array<{ secret: { secretName: string; items: Array<{ key: string }> } }>;
    };
    const c = spec.containers[0]!;
    assert.equal(c.image, "devicestreams:test");
    assert.equal(c.command, undefined);
    assert.equal(c.args[0], "relay");
    for (const arg of [
      "--listen=0.0.0.0:8443",
      "--metrics-listen=0.0.0.0:9090",
      "--idle-timeout=15m",
      "--max-lifetime=8h",
    ]) {
      assert.ok(c.args.includes(arg), `${arg} in ${c.args}`);
    }
    assert.ok(c.args.includes("--config=/etc/devicestreams/relay/relay.json"));
    assert.equal(spec.automountServiceAccountToken, false);
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
    assert.deepEqual(c.resources.requests, { cpu: "50m", memory: "64Mi" });
    // Only what the relay needs is mounted: not the raw tokens (the CA: to trust the hub it asks
    // about users, and to check device certificates).
    assert.equal(spec.volumes[0]!.secret.secretName, secret.metadata.name);
    assert.deepEqual(
      spec.volumes[0]!.secret.items.map((i) => i.key),
      ["relay.json", "tls.crt", "tls.key", "ca.crt"],
    );
    // The hub listens on port 0 here: relays are told the port it got.
    assert.ok(c.args.includes(`--access-review-address=127.0.0.1:${op.hubPort()}`), `${c.args}`);
    assert.ok(c.args.includes("--access-review-ca=/etc/devicestreams/relay/ca.crt"));

    assert.equal(service.spec!.type, "ClusterIP");
    assert.equal(service.spec!.clusterIP, "None", "headless: no ClusterIP spent per stream");
    assert.deepEqual(
      service.spec!.ports!.map((p) => `${p.name}:${p.port}`),
      ["grpc:8443", "metrics:9090"],
    );
    assert.deepEqual((service.spec as { selector: Record<string, string> }).selector, {
      "devicestreams.io/stream": "ssh-1",
      "devicestreams.io/stream-uid": uid,
      "app.kubernetes.io/component": "relay",
    });

    assert.equal(secret.immutable, true);
    const relayJson = JSON.parse(decode(secret, "relay.json"));
    assert.equal(relayJson.version, 1);
    assert.equal(relayJson.acceptSourceToken, false, "users' own credentials only, by default");
    assert.equal(relayJson.stream, `${ns}/ssh-1`);
    assert.equal(relayJson.service, "ssh");
    assert.equal(relayJson.expiresAt, new Date(Date.parse(ds.status!.expiresAt!)).toISOString());
    const source = decode(secret, "source-token");
    assert.match(source, /^src_[A-Za-z0-9_-]{43}$/);
    // With the hub on, the stream is bound to its Device (not enrolled: no key yet) and no
    // destination token exists: the device side shows the Device's certificate instead.
    assert.equal(secret.data!["destination-token"], undefined);
    const edge = await env.admin.get<Device>(objectPath(devices, ns, "edge-1"));
    assert.deepEqual(relayJson.device, { namespace: ns, name: "edge-1", uid: edge.metadata.uid });
    assert.deepEqual(relayJson.credentials, [{ role: "source", sha256: tokenSha256(source) }]);
    const cert = new X509Certificate(decode(secret, "tls.crt"));
    const ca = new X509Certificate(decode(secret, "ca.crt"));
    assert.ok(cert.verify(ca.publicKey), "relay certificate signed by the operator's CA");
    assert.match(cert.subjectAltName!, /DNS:ssh-1-relay\.create\.svc\b/);
    assert.match(cert.subjectAltName!, /DNS:ssh-1-relay\.create\.svc\.cluster\.local/);
    assert.match(cert.subjectAltName!, new RegExp(`URI:devicestreams://relay/create/ssh-1/${uid}`));
    const caSecret = await env.admin.get<Secret>(objectPath(core.secrets, operatorNamespace, "devicestreams-ca"));
    assert.equal(decode(caSecret, "tls.crt").trim(), ca.toString().trim());

    // caBundle: the relay CA for clients, who no longer read the Secret.
    assert.deepEqual(ds.status!.relay, {
      serviceName: "ssh-1-relay",
      endpoint: `ssh-1-relay.${ns}.svc:8443`,
      tlsServerName: `ssh-1-relay.${ns}.svc`,
      credentialsSecret: secret.metadata.name,
      caBundle: decode(caSecret, "tls.crt"),
    });
    assert.equal((await eventWith(ns, "ssh-1", "RelayCreated")).regarding.uid, uid);
    const events = await eventsOf(ns, "ssh-1");
    assert.ok(events.every((e) => e.reportingController === "devicestreams.io/operator"));
    assert.ok(!events.some((e) => e.note.includes(source)), "no token in Events");
  });

  it("moves the status on when the kubelet marks the relay ready and when the hub reports the device", async () => {
    const ns = await env.namespace("status");
    await env.createDevice(ns, "edge-2", { connected: true, services: [{ name: "ssh" }] });
    await env.createStream(ns, "s", { device: "edge-2", service: "ssh" });
    await waitFor("the relay Pod", () => env.getPod(ns, "s-relay"));
    let ds = await phaseOf(ns, "s", "Pending");
    assert.equal(cond(ds, "RelayReady")?.status, "False");
    assert.equal(cond(ds, "Ready")?.status, "False");

    await env.markPodReady(ns, "s-relay");
    ds = await phaseOf(ns, "s", "WaitingForDevice");
    assert.equal(cond(ds, "RelayReady")?.status, "True");
    assert.equal(cond(ds, "Ready")?.status, "False");
    // The DeviceAccepted stand-in writes after the operator's own status: wait for it, not the phase.
    ds = await waitFor("DeviceAccepted WaitingForDevice", async () => {
      const d = await env.getStream(ns, "s");
      return cond(d, "DeviceAccepted")?.reason === "WaitingForDevice" ? d : undefined;
    });
    assert.equal(cond(ds, "DeviceAccepted")?.status, "Unknown");
    assert.equal(ds.status!.observedGeneration, ds.metadata.generation);

    // The hub (its own field manager) reports that the agent took the stream.
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    await env.admin.apply(
      `${objectPath(streams, ns, "s")}/status`,
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        metadata: { name: "s", namespace: ns },
        status: {
          connectedAt: at,
          conditions: [
            {
              type: "DeviceAccepted",
              status: "True",
              reason: "Accepted",
              message: "agent accepted",
              lastTransitionTime: at,
            },
          ],
        },
      },
      "devicestreams-hub",
    );
    ds = await phaseOf(ns, "s", "Connected");
    assert.equal(cond(ds, "Ready")?.status, "True");
    assert.equal(cond(ds, "DeviceAccepted")?.reason, "Accepted", "the operator leaves the hub's verdict alone");
    for (const r of ["RelayCreated", "RelayStarting", "WaitingForDevice", "Connected"]) await eventWith(ns, "s", r);
  });

  it("says when the device does not exist or does not offer the service", async () => {
    const ns = await env.namespace("device");
    await env.createStream(ns, "missing", { device: "nowhere", service: "ssh" });
    const ds = await waitFor("DeviceAccepted=False", async () => {
      const d = await env.getStream(ns, "missing");
      return cond(d, "DeviceAccepted")?.reason === "DeviceNotFound" ? d : undefined;
    });
    assert.match(cond(ds, "DeviceAccepted")!.message, /Device "nowhere" does not exist in namespace "device"/);

    await env.createDevice(ns, "nowhere", { connected: true, services: [{ name: "http" }] });
    const later = await waitFor("ServiceNotOffered", async () => {
      const d = await env.getStream(ns, "missing");
      return cond(d, "DeviceAccepted")?.reason === "ServiceNotOffered" ? d : undefined;
    });
    assert.match(cond(later, "DeviceAccepted")!.message, /does not offer service "ssh"; it offers http/);
  });

  it("on delete, the finalizer stops the relay and the garbage collector removes the Service and Secret", async () => {
    const ns = await env.namespace("delete");
    await env.createDevice(ns, "edge");
    const created = await env.createStream(ns, "gone", { device: "edge", service: "ssh" });
    await waitFor("the relay Pod", () => env.getPod(ns, "gone-relay"));
    const ds = await phaseOf(ns, "gone", "Pending");
    await waitFor("the Service", () => env.admin.get(objectPath(core.services, ns, "gone-relay")));
    const secretName = ds.status!.relay!.credentialsSecret!;
    await env.admin.delete(objectPath(streams, ns, "gone"));

    await waitFor("the DeviceStream to be gone", () => env.gone(streams, ns, "gone"));
    await waitFor("the relay Pod to be gone", () => env.gone(core.pods, ns, "gone-relay"));
    // The operator may not delete Secrets (operator/rbac.yaml): only the GC can have done this. The
    // first time takes ~40 s: the GC starts watching a CRD's kind at its next discovery resync (30 s).
    await waitFor("the Secret to be garbage-collected", () => env.gone(core.secrets, ns, secretName), 90_000);
    await waitFor("the Service to be garbage-collected", () => env.gone(core.services, ns, "gone-relay"), 60_000);
    const deleted = await eventWith(ns, "gone", "Deleted");
    assert.equal(deleted.regarding.uid, created.metadata.uid, "the finalizer ran and said so");
  });

  it("refuses invalid DeviceStreams with messages that say what is wrong", async () => {
    const ns = await env.namespace("invalid");
    const refusal = async (name: string, spec: Record<string, unknown>) => {
      try {
        await env.createStream(ns, name, spec);
      } catch (err) {
        assert.ok(err instanceof KubeApiError && err.status === 422, String(err));
        return err.message;
      }
      assert.fail(`${name} was accepted`);
    };
    assert.match(await refusal("no-device", { service: "ssh" }), /spec\.device: Required value/);
    // spec.service is the one-service form of spec.services: the rule names both.
    assert.match(
      await refusal("no-service", { device: "d" }),
      /spec: Invalid value: "object": set spec\.services \(.*\) or spec\.service \(the one service\)/,
    );
    assert.match(
      await refusal("bad-duration", { device: "d", service: "ssh", timeouts: { connect: "5 minutes" } }),
      /spec\.timeouts\.connect: Invalid value: "5 minutes"/,
    );
    assert.match(
      await refusal("too-short", { device: "d", service: "ssh", timeouts: { connect: "500ms" } }),
      /timeouts\.connect must be between 1s and 24h/,
    );
    assert.match(
      await refusal("too-long", { device: "d", service: "ssh", timeouts: { maxLifetime: "1000h" } }),
      /timeouts\.maxLifetime must be between 1s and 720h/,
    );
    assert.match(
      await refusal("backwards", { device: "d", service: "ssh", timeouts: { connect: "2h", maxLifetime: "1h" } }),
      /timeouts\.connect must not be longer than timeouts\.maxLifetime/,
    );
    assert.match(
      await refusal("dotted.name", { device: "d", service: "ssh" }),
      /metadata\.name must be a DNS label of at most 57 characters/,
    );
    assert.match(
      await refusal("exposure", { device: "d", service: "ssh", relay: { exposure: "Ingress" } }),
      /spec\.relay\.exposure: Unsupported value: "Ingress"/,
    );

    await env.createStream(ns, "fixed", { device: "d", service: "ssh" });
    try {
      await env.admin.jsonPatch(
        objectPath(streams, ns, "fixed"),
        [{ op: "replace", path: "/spec/service", value: "http" }],
        "t",
      );
      assert.fail("changing spec.service was accepted");
    } catch (err) {
      assert.ok(err instanceof KubeApiError && err.status === 422, String(err));
      assert.match(err.message, /spec is immutable: a DeviceStream is a one-time grant/);
    }
  });

  it("a stream whose device never attaches fails with ConnectTimeout and loses its relay", async () => {
    const ns = await env.namespace("connect-timeout");
    await env.createDevice(ns, "edge");
    await env.createStream(ns, "late", {
      device: "edge",
      service: "ssh",
      timeouts: { connect: "5s", maxLifetime: "1h" },
    });
    await waitFor("the relay Pod", () => env.getPod(ns, "late-relay"));
    await env.markPodReady(ns, "late-relay");
    const ds = await phaseOf(ns, "late", "Failed", 20_000);
    const ready = cond(ds, "Ready")!;
    assert.equal(ready.reason, "ConnectTimeout");
    assert.match(ready.message, /waiting for device "edge" to attach after the connect timeout of 5s/);
    assert.equal(cond(ds, "RelayReady")?.reason, "StreamEnded");
    const took = Date.parse(ds.status!.endedAt!) - Date.parse(ds.metadata.creationTimestamp!);
    assert.ok(took >= 5000 && took < 15_000, `ended ${took} ms after creation`);
    assert.equal(ds.status!.relay, undefined);
    await waitFor("the relay Pod to be deleted", () => env.gone(core.pods, ns, "late-relay"));
    await waitFor("the relay Service to be deleted", () => env.gone(core.services, ns, "late-relay"));
    assert.equal((await eventWith(ns, "late", "ConnectTimeout")).type, "Warning");
  });

  it("a stream ends at its maximum lifetime with LifetimeExpired", async () => {
    const ns = await env.namespace("lifetime");
    await env.createDevice(ns, "edge", { connected: true });
    await env.createStream(ns, "brief", {
      device: "edge",
      service: "ssh",
      timeouts: { connect: "3s", maxLifetime: "3s" },
    });
    const ds = await phaseOf(ns, "brief", "Expired", 20_000);
    assert.equal(cond(ds, "Ready")?.reason, "LifetimeExpired");
    assert.match(cond(ds, "Ready")!.message, /maximum lifetime of 3s/);
    const took = Date.parse(ds.status!.endedAt!) - Date.parse(ds.metadata.creationTimestamp!);
    assert.ok(took >= 3000 && took < 10_000, `ended ${took} ms after creation`);
    assert.equal(
      ds.status!.expiresAt,
      new Date(Date.parse(ds.metadata.creationTimestamp!) + 3000).toISOString().replace(/\.\d+Z$/, "Z"),
    );
    await waitFor("the relay Pod to be deleted", () => env.gone(core.pods, ns, "brief-relay"));
  });

  it("a stream idle for longer than its idle timeout expires with IdleTimeout", async () => {
    const ns = await env.namespace("idle");
    await env.createDevice(ns, "edge", { connected: true });
    await env.createStream(ns, "quiet", { device: "edge", service: "ssh", timeouts: { idle: "2s" } });
    await waitFor("the relay Pod", () => env.getPod(ns, "quiet-relay"));
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    // The hub reports the last traffic it saw; the operator acts on it.
    await env.admin.apply(
      `${objectPath(streams, ns, "quiet")}/status`,
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        metadata: { name: "quiet", namespace: ns },
        status: { connectedAt: at, lastActivityAt: at },
      },
      "devicestreams-hub",
    );
    const ds = await phaseOf(ns, "quiet", "Expired", 20_000);
    assert.equal(cond(ds, "Ready")?.reason, "IdleTimeout");
    await waitFor("the relay Pod to be deleted", () => env.gone(core.pods, ns, "quiet-relay"));
  });

  describe("concurrency caps", () => {
    const limited = async (what: string, ns: string, names: string[]) =>
      waitFor(what, async () => {
        const all = await Promise.all(names.map((n) => env.getStream(ns, n)));
        const waiting = all.filter((d) => cond(d, "Ready")?.reason === "ConcurrentStreamLimit");
        const running = all.filter((d) => d.status?.phase && cond(d, "Ready")?.reason !== "ConcurrentStreamLimit");
        return running.length + waiting.length === all.length ? { waiting, running } : undefined;
      });

    it("refuses streams beyond the per-namespace and overall caps with a clear condition, and admits them when a slot frees", async () => {
      // Streams of earlier tests that still run hold slots; the overall cap leaves room for 3 more.
      const active = (
        await env.admin.get<KubeList<DeviceStream>>("/apis/devicestreams.io/v1alpha1/devicestreams")
      ).items.filter((d) => d.status?.phase !== "Failed" && d.status?.phase !== "Expired").length;
      await op.stop();
      op = await env.startOperator([`--max-streams=${active + 3}`, "--max-streams-per-namespace=2"]);

      const a = await env.namespace("caps-a");
      const b = await env.namespace("caps-b");
      for (const n of ["a1", "a2", "a3"]) await env.createStream(a, n, { device: "d", service: "ssh" });
      const inA = await limited("caps in namespace a", a, ["a1", "a2", "a3"]);
      assert.equal(inA.running.length, 2);
      assert.equal(inA.waiting.length, 1);
      const refused = inA.waiting[0]!;
      assert.equal(refused.status!.phase, "Pending");
      assert.match(
        cond(refused, "Ready")!.message,
        /namespace "caps-a" already has 2 streams.*--max-streams-per-namespace=2/,
      );
      assert.ok(await env.gone(core.pods, a, `${refused.metadata.name}-relay`), "no relay for the refused stream");

      for (const n of ["b1", "b2"]) await env.createStream(b, n, { device: "d", service: "ssh" });
      const inB = await limited("caps overall", b, ["b1", "b2"]);
      assert.equal(inB.running.length, 1);
      assert.match(cond(inB.waiting[0]!, "Ready")!.message, /--max-streams=\d+/);
      assert.equal((await eventWith(a, refused.metadata.name!, "ConcurrentStreamLimit")).type, "Warning");

      // A slot frees up: the waiting stream in namespace a gets its relay.
      await env.admin.delete(objectPath(streams, a, inA.running[0]!.metadata.name!));
      await waitFor("the refused stream's relay", () => env.getPod(a, `${refused.metadata.name}-relay`));

      await op.stop();
      op = await env.startOperator();
    });
  });

  it("serves controller metrics without stream names, and readiness once caches synced", async () => {
    const base = `http://127.0.0.1:${op.metricsPort}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      'devicestreams_operator_reconcile_total{controller="devicestream",result="success"}',
      "devicestreams_operator_reconcile_duration_seconds_bucket",
      'devicestreams_operator_workqueue_depth{queue="devicestream"}',
      "devicestreams_operator_workqueue_retries_total",
      "devicestreams_operator_leader 1",
      'devicestreams_operator_cache_synced{resource="devicestreams"} 1',
      'devicestreams_operator_streams{phase="Failed"}',
    ]) {
      assert.ok(text.includes(name), `${name} in /metrics`);
    }
    // Only the leader's per-stream families (operator/stream-metrics.ts) name streams, live ones.
    const perStream = /^devicestreams_operator_stream_(phase|bytes_total|device_connected)\{/;
    const others = text
      .split("\n")
      .filter((l) => !perStream.test(l))
      .join("\n");
    for (const streamName of ["ssh-1", "gone", "late", "brief", "edge", "caps-a"]) {
      assert.ok(!others.includes(`"${streamName}"`), `no label value ${streamName}`);
    }
  });

  it("runs with only the rules of operator/rbac.yaml, which do not let it read Secrets", async () => {
    // Every test above ran the operator under this identity; here is what it may not do.
    const asOperator = new KubeClient(env.operatorKubeConfig);
    try {
      for (const path of [
        "/api/v1/secrets",
        objectPath(core.secrets, "create", "anything"),
        "/api/v1/namespaces/create/configmaps",
      ]) {
        await assert.rejects(
          asOperator.get(path),
          (err: unknown) => err instanceof KubeApiError && err.status === 403,
          path,
        );
      }
      // Enrolment tokens are its to change only in its own namespace.
      const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "anything", namespace: "create" } };
      await assert.rejects(
        asOperator.apply(objectPath(core.secrets, "create", "anything"), secret, "test"),
        (err: unknown) => err instanceof KubeApiError && err.status === 403,
      );
      await assert.rejects(
        asOperator.delete(objectPath(core.secrets, "create", "anything")),
        (err: unknown) => err instanceof KubeApiError && err.status === 403,
      );
    } finally {
      asOperator.close();
    }
  });
});
