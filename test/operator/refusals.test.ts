// Everything that keeps a stream's relay from being made, said at once and with a reason a user can
// act on, against a real kube-apiserver with the operator under its own RBAC: the API server
// refusing a relay Pod as invalid (a namespace's LimitRange default), forbidding it (a LimitRange
// maximum), failing to answer (an admission webhook that cannot be reached), and the operator's own
// configuration refusing an exposure or resources a user could not get directly.
import assert from "node:assert/strict";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { collectionPath, core, type KubeClient, objectPath, type Resource } from "../../kube/client.ts";
import type { KubeList } from "../../kube/types.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { freePort } from "../helpers/free-port.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv } from "./env.ts";

interface EventObj {
  reason: string;
  type: string;
  note: string;
  regarding: { name: string };
}

const limitRanges: Resource = { group: "", version: "v1", plural: "limitranges", kind: "LimitRange" };
const webhooks: Resource = {
  group: "admissionregistration.k8s.io",
  version: "v1",
  plural: "validatingwebhookconfigurations",
  kind: "ValidatingWebhookConfiguration",
};

describe("operator: refusals are visible at once", function () {
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

  const cond = (ds: DeviceStream, type: string) => ds.status?.conditions?.find((c) => c.type === type);
  const relayReason = (ns: string, name: string, reason: string, timeoutMs = 15_000) =>
    waitFor(
      `${ns}/${name} RelayReady ${reason}`,
      async () => {
        const ds = await env.getStream(ns, name);
        return cond(ds, "RelayReady")?.reason === reason ? ds : undefined;
      },
      timeoutMs,
    );
  const phaseOf = (ns: string, name: string, phase: string, timeoutMs = 15_000) =>
    waitFor(
      `${ns}/${name} phase ${phase}`,
      async () => {
        const ds = await env.getStream(ns, name);
        return ds.status?.phase === phase ? ds : undefined;
      },
      timeoutMs,
    );
  const eventWith = (ns: string, name: string, reason: string) =>
    waitFor(`Event ${reason} for ${ns}/${name}`, async () =>
      (await env.admin.get<KubeList<EventObj>>(`/apis/events.k8s.io/v1/namespaces/${ns}/events`)).items.find(
        (e) => e.regarding.name === name && e.reason === reason,
      ),
    );
  /** The value of one series of the operator's /metrics, 0 when absent. */
  const metric = async (series: string) => {
    const text = await (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line ? Number(line.split(" ")[1]) : 0;
  };
  const writeErrors = (kind: string, reason: string) =>
    metric(`devicestreams_operator_relay_write_errors_total{kind="${kind}",reason="${reason}"}`);
  const limitRange = (client: KubeClient, ns: string, limit: Record<string, unknown>) =>
    client.create(
      collectionPath(limitRanges, ns),
      {
        apiVersion: "v1",
        kind: "LimitRange",
        metadata: { name: "limits" },
        spec: { limits: [{ type: "Container", ...limit }] },
      },
      "tests",
    );

  it("a relay Pod refused as invalid (422) is RelayInvalid at once, with the API server's words, an Event and a metric, retried slowly until fixed", async () => {
    const ns = await env.namespace("invalid-pod");
    // A namespace default CPU limit below the relay's CPU request: every relay Pod here is invalid.
    await limitRange(env.admin, ns, { default: { cpu: "10m" } });
    const before = await writeErrors("Pod", "RelayInvalid");
    const created = Date.now();
    await env.createStream(ns, "s", { device: "d", service: "ssh" });
    const ds = await relayReason(ns, "s", "RelayInvalid");
    const shownAfter = Date.now() - created;
    assert.ok(shownAfter < 10_000, `shown after ${shownAfter} ms`);
    assert.equal(ds.status!.phase, "Pending");
    assert.equal(cond(ds, "Ready")?.reason, "RelayInvalid", "Ready says the same");
    const message = cond(ds, "RelayReady")!.message;
    assert.match(
      message,
      /the API server refused the relay Pod s-relay as invalid: .*must be less than or equal to cpu limit/,
    );
    assert.match(message, /LimitRange/);
    assert.match(message, /tries again in 5s \(attempt 1\)/);
    assert.equal((await eventWith(ns, "s", "RelayInvalid")).type, "Warning");
    assert.ok((await writeErrors("Pod", "RelayInvalid")) > before, "counted");

    // No retry storm: the next attempt comes after its wait, not with every status change.
    const second = await relayReason(ns, "s", "RelayInvalid").then(() =>
      waitFor("attempt 2", async () => {
        const d = await env.getStream(ns, "s");
        return /attempt 2\)/.test(cond(d, "RelayReady")!.message) ? Date.now() : undefined;
      }),
    );
    assert.ok(second - created >= 4_500, `second attempt ${second - created} ms after creation`);
    assert.ok((await writeErrors("Pod", "RelayInvalid")) - before <= 3, "a handful of attempts, not a storm");

    // Fixed: the next attempt makes the relay.
    await env.admin.delete(objectPath(limitRanges, ns, "limits"));
    await waitFor("the relay Pod", () => env.getPod(ns, "s-relay"), 30_000);
    const after = await relayReason(ns, "s", "RelayStarting");
    assert.equal(after.status!.phase, "Pending");
  });

  it("a relay Pod forbidden (403) is RelayForbidden, and the connect timeout names the refusal, not the Pod's events", async () => {
    const ns = await env.namespace("forbidden-pod");
    await limitRange(env.admin, ns, { max: { memory: "100Mi" } });
    await env.createStream(ns, "s", { device: "d", service: "ssh", timeouts: { connect: "6s", maxLifetime: "1h" } });
    const ds = await relayReason(ns, "s", "RelayForbidden");
    assert.match(
      cond(ds, "RelayReady")!.message,
      /the API server forbade the relay Pod s-relay: .*maximum memory usage per Container is 100Mi, but limit is 256Mi/,
    );
    assert.equal((await eventWith(ns, "s", "RelayForbidden")).type, "Warning");
    const failed = await phaseOf(ns, "s", "Failed", 20_000);
    const ready = cond(failed, "Ready")!;
    assert.equal(ready.reason, "ConnectTimeout");
    assert.match(ready.message, /the relay was not created within the connect timeout of 6s: .*maximum memory usage/);
    assert.doesNotMatch(ready.message, /relay Pod's events/);
    assert.ok(await env.gone(core.pods, ns, "s-relay"));
  });

  it("a transient failure (an admission webhook that cannot be reached) is RelayAPIError, retried with backoff, and passes", async () => {
    const ns = await env.namespace("webhook-down");
    const closed = await freePort();
    const hook = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingWebhookConfiguration",
      metadata: { name: "unreachable" },
      webhooks: [
        {
          name: "unreachable.devicestreams.test",
          clientConfig: { url: `https://127.0.0.1:${closed}/validate` },
          rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": ns } },
          failurePolicy: "Fail",
          sideEffects: "None",
          admissionReviewVersions: ["v1"],
          timeoutSeconds: 2,
        },
      ],
    };
    await env.admin.create(collectionPath(webhooks), hook, "tests");
    try {
      await env.createStream(ns, "s", { device: "d", service: "ssh" });
      const ds = await relayReason(ns, "s", "RelayAPIError");
      const message = cond(ds, "RelayReady")!.message;
      assert.match(message, /the API server did not take the relay Pod s-relay: .*failed calling webhook/);
      assert.match(message, /retrying with backoff: the operator tries again in \d+s \(attempt \d+\)/);
      assert.equal((await eventWith(ns, "s", "RelayAPIError")).type, "Warning");
      assert.ok((await writeErrors("Pod", "RelayAPIError")) >= 1);
    } finally {
      await env.admin.delete(objectPath(webhooks, "", "unreachable"));
    }
    await waitFor("the relay Pod", () => env.getPod(ns, "s-relay"), 30_000);
    await relayReason(ns, "s", "RelayStarting");
  });

  describe("what the operator's configuration allows", () => {
    const objects = async (ns: string, name: string) => ({
      pod: !(await env.gone(core.pods, ns, `${name}-relay`)),
      service: !(await env.gone(core.services, ns, `${name}-relay`)),
    });

    it("by default: ClusterIP only and at most 1 CPU / 512Mi; more fails at once and makes nothing", async () => {
      const ns = await env.namespace("policy-default");
      const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
        ["lb", { exposure: "LoadBalancer" }, "ExposureNotAllowed", /exposure is LoadBalancer.*--relay-exposures/],
        ["np", { exposure: "NodePort" }, "ExposureNotAllowed", /exposure is NodePort/],
        [
          "big-mem",
          { exposure: "ClusterIP", resources: { limits: { memory: "1Gi" } } },
          "ResourcesNotAllowed",
          /limits\.memory is 1Gi, more than this operator allows \(--relay-max-memory=512Mi\)/,
        ],
        [
          "big-cpu",
          { exposure: "ClusterIP", resources: { requests: { cpu: "2" } } },
          "ResourcesNotAllowed",
          /requests\.cpu is 2, more than this operator allows \(--relay-max-cpu=1\)/,
        ],
      ];
      for (const [name, relay] of cases) await env.createStream(ns, name, { device: "d", service: "ssh", relay });
      for (const [name, , reason, message] of cases) {
        const ds = await phaseOf(ns, name, "Failed");
        assert.equal(cond(ds, "Ready")?.reason, reason, name);
        assert.match(cond(ds, "Ready")!.message, message, name);
        assert.equal((await eventWith(ns, name, reason)).type, "Warning");
        assert.deepEqual(await objects(ns, name), { pod: false, service: false }, `${name} made no object`);
      }
    });

    it("an administrator may allow more; defaults then rise with a stream's request", async () => {
      await op.stop();
      op = await env.startOperator(["--relay-exposures=ClusterIP,LoadBalancer", "--relay-max-memory=2Gi"]);
      try {
        const ns = await env.namespace("policy-wider");
        await env.createStream(ns, "lb", {
          device: "d",
          service: "ssh",
          relay: { exposure: "LoadBalancer", resources: { requests: { memory: "300Mi" } } },
        });
        const pod = await waitFor("the relay Pod", () => env.getPod(ns, "lb-relay"));
        const service = await env.admin.get<{ spec: { type: string } }>(objectPath(core.services, ns, "lb-relay"));
        assert.equal(service.spec.type, "LoadBalancer");
        const resources = (pod.spec as { containers: Array<{ resources: unknown }> }).containers[0]!.resources;
        // The default limit (256Mi) would be under the request: it rises to it rather than making the Pod invalid.
        assert.deepEqual(resources, { requests: { cpu: "50m", memory: "300Mi" }, limits: { memory: "300Mi" } });
      } finally {
        await op.stop();
        op = await env.startOperator();
      }
    });
  });
});
