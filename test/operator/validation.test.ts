// What the CRDs refuse, against a real kube-apiserver (no operator needed): resource quantities
// checked as quantities, one message per bad duration, a Device's identity that cannot be removed
// however the request is written (JSON patch, merge patch, kubectl replace, server-side apply), and
// what `kubectl get -o wide` prints for a stream's end.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Device } from "../../api/v1alpha1.ts";
import { KubeApiError, objectPath } from "../../kube/client.ts";
import { runCommand } from "../helpers/command.ts";
import { devices, OperatorEnv, streams } from "./env.ts";

const keyA = "a".repeat(64);
const keyB = "b".repeat(64);

describe("CRD validation", function () {
  this.timeout(120_000);
  let env: OperatorEnv;

  before(async () => {
    env = await OperatorEnv.start();
  });

  after(async () => {
    await env?.stop();
  });

  /** The API server's message for a refused request; fails if it was accepted. */
  const refusal = async (what: string, request: () => Promise<unknown>): Promise<string> => {
    try {
      await request();
    } catch (err) {
      assert.ok(err instanceof KubeApiError && err.status === 422, `${what}: ${err}`);
      return err.message;
    }
    assert.fail(`${what} was accepted`);
  };
  const kubectl = (args: string[]) =>
    runCommand("kubectl", [`--kubeconfig=${env.cluster.kubeconfigPath}`, ...args], { timeoutMs: 30_000 });

  describe("DeviceStream relay resources", () => {
    let ns: string;
    let n = 0;
    before(async () => {
      ns = await env.namespace("resources");
    });
    const withResources = (resources: Record<string, unknown>) =>
      env.createStream(ns, `r${n++}`, { device: "d", service: "ssh", relay: { exposure: "ClusterIP", resources } });
    const refused = (resources: Record<string, unknown>) =>
      refusal(JSON.stringify(resources), () => withResources(resources));

    it("refuses amounts out of bounds, whatever their suffix, with one message each", async () => {
      for (const memory of ["8Ei", "1E", "999999999999999999999999999999E", "1Pi", "0", "1Ki"]) {
        const msg = await refused({ limits: { memory } });
        assert.match(msg, /spec\.relay\.resources\.limits\.memory: Invalid value: .*must be between 16Mi and 256Gi/);
        assert.doesNotMatch(msg, /should match|must be a Kubernetes quantity/, `${memory}: one message`);
      }
      for (const cpu of ["99999999999999999999", "0", "-1", "65"]) {
        const msg = await refused({ requests: { cpu } });
        assert.match(msg, /spec\.relay\.resources\.requests\.cpu: .*must be between 1m and 64 cores/, cpu);
      }
    });

    it("refuses what is not a quantity, saying so once", async () => {
      for (const memory of ["1 Gi", "lots", "1GB"]) {
        const msg = await refused({ requests: { memory } });
        assert.match(msg, /must be a Kubernetes quantity such as 128Mi or 1Gi/, memory);
        assert.doesNotMatch(msg, /must be between|no such key|conversion/, `${memory}: one message`);
      }
    });

    it("refuses requests above limits", async () => {
      assert.match(
        await refused({ requests: { memory: "2Gi" }, limits: { memory: "1Gi" } }),
        /requests\.memory must not be more than relay\.resources\.limits\.memory/,
      );
      await withResources({ requests: { cpu: "1100m" }, limits: { cpu: "1.1" } }); // equal is fine
      assert.match(
        await refused({ requests: { cpu: "1101m" }, limits: { cpu: "1.1" } }),
        /requests\.cpu must not be more than relay\.resources\.limits\.cpu/,
      );
    });

    it("accepts ordinary quantities in any notation", async () => {
      await withResources({ requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1.5", memory: "1Gi" } });
      await withResources({ requests: { cpu: "0.25", memory: "200M" }, limits: { memory: "1e9" } });
      await withResources({ limits: { cpu: "64", memory: "256Gi" } });
    });
  });

  describe("DeviceStream durations", () => {
    let ns: string;
    before(async () => {
      ns = await env.namespace("durations");
    });
    const refused = (name: string, timeouts: Record<string, string>) =>
      refusal(name, () => env.createStream(ns, name, { device: "d", service: "ssh", timeouts }));
    const causes = (msg: string) => (msg.match(/spec\.timeouts[.\w]*: /g) ?? []).length;

    it("a bad duration gets one clear message, not also CEL's type conversion error", async () => {
      for (const [field, value] of [
        ["connect", "5 minutes"],
        ["idle", "1d"],
        ["maxLifetime", "-1h"],
      ] as const) {
        const msg = await refused(`bad-${field.toLowerCase()}`, { [field]: value });
        assert.match(msg, new RegExp(`spec\\.timeouts\\.${field}: Invalid value: "${value}"`));
        assert.doesNotMatch(msg, /type conversion|google\.protobuf\.Duration|must be between|must not be longer/);
        assert.equal(causes(msg), 1, msg);
      }
    });

    it("a duration too large to compute is out of range, in one message", async () => {
      const msg = await refused("huge", { connect: "99999999999h" });
      assert.match(msg, /timeouts\.connect must be between 1s and 24h/);
      assert.doesNotMatch(msg, /type conversion|overflow|must not be longer/);
      assert.equal(causes(msg), 1, msg);
      assert.match(await refused("huge-ms", { idle: "9999999999999ms" }), /timeouts\.idle must be between 1s and 720h/);
    });

    it("still checks ranges and their order, and accepts what Go accepts", async () => {
      assert.match(await refused("short", { connect: "500ms" }), /timeouts\.connect must be between 1s and 24h/);
      assert.match(
        await refused("order", { connect: "2h", maxLifetime: "1h" }),
        /timeouts\.connect must not be longer than timeouts\.maxLifetime/,
      );
      await env.createStream(ns, "fine", {
        device: "d",
        service: "ssh",
        timeouts: { connect: "1m30s", idle: "1.5h", maxLifetime: "719h59m59s" },
      });
    });
  });

  describe("Device identity", () => {
    let ns: string;
    let n = 0;
    before(async () => {
      ns = await env.namespace("identity");
    });
    // As a GitOps tool would keep it: applied, identity included, by one field manager.
    const enrolled = async () => {
      const name = `dev-${n++}`;
      await env.admin.apply(path(name), device(name, { identity: { publicKeySHA256: keyA } }), "gitops");
      return name;
    };
    const device = (name: string, spec: Record<string, unknown>) => ({
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "Device",
      metadata: { name, namespace: ns },
      spec,
    });
    const path = (name: string) => objectPath(devices, ns, name);
    const identityOf = async (name: string) => (await env.admin.get<Device>(path(name))).spec.identity;
    const cannotRemove = /spec\.identity\.publicKeySHA256 cannot be removed once the device has enrolled/;

    it("cannot be removed by JSON patch, merge patch with null, or server-side apply without it", async () => {
      const name = await enrolled();
      const patch = (body: unknown, contentType: string) => () =>
        env.admin.request("PATCH", path(name), { body, contentType, query: { fieldManager: "someone" } });
      for (const [what, request] of [
        [
          "JSON patch remove /spec/identity",
          patch([{ op: "remove", path: "/spec/identity" }], "application/json-patch+json"),
        ],
        [
          "JSON patch remove the hash",
          patch([{ op: "remove", path: "/spec/identity/publicKeySHA256" }], "application/json-patch+json"),
        ],
        ["merge patch identity: null", patch({ spec: { identity: null } }, "application/merge-patch+json")],
        [
          "merge patch hash: null",
          patch({ spec: { identity: { publicKeySHA256: null } } }, "application/merge-patch+json"),
        ],
        // The manager that applied it applies again without it: a removal.
        ["server-side apply without it", () => env.admin.apply(path(name), device(name, {}), "gitops")],
      ] as const) {
        assert.match(await refusal(what, request), cannotRemove, what);
      }
      assert.deepEqual(await identityOf(name), { publicKeySHA256: keyA });
    });

    it("cannot be removed by kubectl replace with a manifest that lacks it", async () => {
      const name = await enrolled();
      const current = JSON.parse((await kubectl(["get", "device", "-n", ns, name, "-o", "json"])).stdout);
      delete current.spec.identity;
      const file = join(env.cluster.dataDir, `${name}.json`);
      writeFileSync(file, JSON.stringify(current));
      const r = await kubectl(["replace", "-f", file]);
      assert.notEqual(r.code, 0, "kubectl replace was accepted");
      assert.match(r.stderr, cannotRemove);
      assert.match(r.stderr, /set spec\.identity\.reenroll to true/, "the message says what to do instead");
      assert.deepEqual(await identityOf(name), { publicKeySHA256: keyA });
    });

    it("changes only after reenroll was set, and may be set where there was none", async () => {
      const name = await enrolled();
      const setHash = (hash: string) =>
        env.admin.jsonPatch(
          path(name),
          [{ op: "replace", path: "/spec/identity", value: { publicKeySHA256: hash } }],
          "t",
        );
      assert.match(await refusal("changing the hash", () => setHash(keyB)), /publicKeySHA256 cannot change/);
      await env.admin.jsonPatch(path(name), [{ op: "add", path: "/spec/identity/reenroll", value: true }], "t");
      await setHash(keyB);
      assert.deepEqual(await identityOf(name), { publicKeySHA256: keyB });
      assert.match(await refusal("changing it again", () => setHash(keyA)), /publicKeySHA256 cannot change/);

      const fresh = `dev-${n++}`;
      await env.createDevice(ns, fresh);
      await env.admin.jsonPatch(
        path(fresh),
        [{ op: "add", path: "/spec/identity", value: { publicKeySHA256: keyA } }],
        "t",
      );
      assert.deepEqual(await identityOf(fresh), { publicKeySHA256: keyA });
    });
  });

  describe("DeviceStream services", () => {
    let ns: string;
    let n = 0;
    before(async () => {
      ns = await env.namespace("services");
    });
    const create = (spec: Record<string, unknown>) => env.createStream(ns, `s${n++}`, { device: "d", ...spec });
    const rule =
      /set spec\.services .* or spec\.service .*; when both are set, spec\.services must contain spec\.service/;

    it("takes spec.service (one service), spec.services, or both when services contains service", async () => {
      assert.equal((await create({ service: "ssh" })).spec.service, "ssh");
      assert.deepEqual((await create({ services: ["ssh", "web"] })).spec.services, ["ssh", "web"]);
      const both = await create({ service: "web", services: ["ssh", "web"] });
      assert.deepEqual([both.spec.service, both.spec.services], ["web", ["ssh", "web"]]);
    });

    it("refuses neither, a service outside services, an empty, repeated, long or badly named list", async () => {
      assert.match(await refusal("neither", () => create({})), rule);
      assert.match(await refusal("outside", () => create({ service: "vnc", services: ["ssh", "web"] })), rule);
      assert.match(
        await refusal("empty", () => create({ services: [] })),
        /spec\.services.*should have at least 1 items|must have at least 1 item/,
      );
      assert.match(
        await refusal("twice", () => create({ services: ["ssh", "ssh"] })),
        /spec\.services\[1\]: Duplicate value/,
      );
      const many = Array.from({ length: 17 }, (_, i) => `s${i}`);
      assert.match(
        await refusal("17", () => create({ services: many })),
        /spec\.services: Too many: 17: must have at most 16 items/,
      );
      assert.match(
        await refusal("name", () => create({ services: ["ssh", "Web"] })),
        /spec\.services\[1\]: Invalid value: "Web": spec\.services\[1\] in body should match/,
      );
    });

    it("examples/rdp/devicestream.yaml is accepted as written", async () => {
      const r = await kubectl([
        "apply",
        "-n",
        ns,
        "-f",
        join(import.meta.dirname, "../../examples/rdp/devicestream.yaml"),
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /devicestream\.devicestreams\.io\/panel-3-rdp created/);
    });

    it("kubectl get prints the services the operator recorded in status, whichever form the spec used", async () => {
      await create({ services: ["ssh", "web"] });
      await env.admin.apply(
        `${objectPath(streams, ns, `s${n - 1}`)}/status`,
        {
          apiVersion: "devicestreams.io/v1alpha1",
          kind: "DeviceStream",
          metadata: { name: `s${n - 1}`, namespace: ns },
          status: { services: ["ssh", "web"] },
        },
        "devicestreams-operator",
      );
      const r = await kubectl(["get", "devicestream", "-n", ns, `s${n - 1}`]);
      assert.equal(r.code, 0, r.stderr);
      const [header, row] = r.stdout.trim().split("\n");
      assert.match(header!, /^NAME\s+DEVICE\s+SERVICES\s+PHASE/);
      assert.match(row!, /^s\d+\s+d\s+\["ssh","web"\]\s/);
    });
  });

  it("kubectl get -o wide prints when a stream expires as a time, not <invalid>", async () => {
    const ns = await env.namespace("printer");
    await env.createStream(ns, "later", { device: "d", service: "ssh" });
    const expiresAt = new Date(Date.now() + 8 * 3600_000).toISOString().replace(/\.\d+Z$/, "Z");
    await env.admin.apply(
      `${objectPath(streams, ns, "later")}/status`,
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        metadata: { name: "later", namespace: ns },
        status: { expiresAt },
      },
      "devicestreams-operator",
    );
    const r = await kubectl(["get", "devicestreams", "-n", ns, "-o", "wide"]);
    assert.equal(r.code, 0, r.stderr);
    const [header, row] = r.stdout.trim().split("\n");
    assert.match(header!, /EXPIRES/);
    assert.doesNotMatch(row!, /<invalid>/);
    assert.ok(row!.includes(expiresAt), `the row shows ${expiresAt}: ${row}`);
  });
});
