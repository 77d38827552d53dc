// The hub against a real kube-apiserver: enrolment through the real flow, agents as real
// processes, offers answered by their allow-lists, revocation, and a session on a replica that
// does not lead.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ServiceError, StatusObject } from "@grpc/grpc-js";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { objectPath } from "../../kube/client.ts";
import type { KubeList } from "../../kube/types.ts";
import { makeEnrollmentToken } from "../../operator/hub/enrollment-token.ts";
import { deviceFromCertificate } from "../../operator/hub/identity.ts";
import { hubTokenKey } from "../../operator/hub/token-key.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { startOperator } from "../../operator/main.ts";
import { defaultKeepalive } from "../../runtime/grpc-options.ts";
import { createLogger } from "../../runtime/log.ts";
import { createCertificateRequest, publicKeySha256 } from "../../runtime/pki.ts";
import { HubClient } from "../../transport/hub-client.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, OperatorEnv } from "../operator/env.ts";
import { agentFiles, caPem, createDevice, enrollmentToken, getDevice, hubPort, startAgent } from "./hub-env.ts";

interface EventObj {
  reason: string;
  note: string;
  regarding: { name: string };
}

describe("hub: enrolment, control sessions and offers", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator;
  let port: number;
  const agents: ComponentProcess[] = [];

  before(async () => {
    env = await OperatorEnv.start();
    op = await env.startOperator();
    port = await hubPort(op);
  });

  // A failed test shows what its agents said (kubebuilder's e2e dumps logs the same way).
  afterEach(function () {
    if (this.currentTest?.state !== "failed") return;
    for (const a of agents) process.stderr.write(`--- ${a.name} ---\n${a.logs.slice(-4000)}\n`);
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await op?.stop();
    await env?.stop();
  });

  const agent = (...args: Parameters<typeof startAgent>) => {
    const a = startAgent(...args);
    agents.push(a);
    return a;
  };
  const cond = (ds: DeviceStream, type: string) => ds.status?.conditions?.find((c) => c.type === type);
  const eventWith = (ns: string, name: string, reason: string) =>
    waitFor(`Event ${reason} for ${ns}/${name}`, async () =>
      (await env.admin.get<KubeList<EventObj>>(`/apis/events.k8s.io/v1/namespaces/${ns}/events`)).items.find(
        (e) => e.regarding.name === name && e.reason === reason,
      ),
    );
  const connected = (ns: string, name: string, want: boolean) =>
    waitFor(`Device ${ns}/${name} connected=${want}`, async () => {
      const d = await getDevice(env, ns, name);
      return d.status?.connected === want ? d : undefined;
    });
  const streamSpec = (device: string, service: string) => ({ device, service });
  const ready = (ns: string, stream: string) =>
    waitFor(`relay Pod of ${stream}`, () => env.getPod(ns, `${stream}-relay`)).then(() =>
      env.markPodReady(ns, `${stream}-relay`),
    );

  it("enrols a device with its token and refuses another device's, an expired, a reused token and no certificate", async () => {
    const ns = await env.namespace("enrol");
    const a = await createDevice(env, ns, "alpha");
    await createDevice(env, ns, "beta");
    const ca = await caPem(env);
    const token = await enrollmentToken(env, ns, "alpha");
    const hub = new HubClient({
      address: `127.0.0.1:${port}`,
      tls: { caPem: ca.certPem },
      keepalive: defaultKeepalive,
    });
    try {
      const { csrPem } = await createCertificateRequest("x");
      const refused = (req: Parameters<HubClient["enroll"]>[0], code: string) =>
        assert.rejects(hub.enroll(req), (err: ServiceError) => {
          assert.match(err.details, new RegExp(`^${code}: `), err.details);
          return true;
        });
      await refused({ token, namespace: ns, name: "beta", csrPem }, "DS_ENROLLMENT_TOKEN_INVALID");
      const expired = makeEnrollmentToken(hubTokenKey(ca), a.metadata.uid!, Date.now() - 1000);
      await refused({ token: expired, namespace: ns, name: "alpha", csrPem }, "DS_ENROLLMENT_TOKEN_EXPIRED");
      await refused({ token, namespace: ns, name: "gamma", csrPem }, "DS_DEVICE_NOT_FOUND");

      const res = await hub.enroll({ token, namespace: ns, name: "alpha", csrPem });
      const leaf = res.certificateChainPem!.split("-----END CERTIFICATE-----")[0]!;
      const der = Buffer.from(leaf.replace(/-----[^-]+-----|\s/g, ""), "base64");
      const id = await deviceFromCertificate(der, ca.certPem);
      assert.deepEqual([id.namespace, id.name, id.uid], [ns, "alpha", a.metadata.uid]);
      const enrolled = await getDevice(env, ns, "alpha");
      assert.equal(enrolled.spec.identity?.publicKeySHA256, publicKeySha256(csrPem));
      await eventWith(ns, "alpha", "Enrolled");

      const again = await createCertificateRequest("x");
      await refused({ token, namespace: ns, name: "alpha", csrPem: again.csrPem }, "DS_ALREADY_ENROLLED");

      const call = hub.session();
      const end = await new Promise<StatusObject>((resolve) => {
        call.on("status", resolve);
        call.on("error", () => {});
        call.write({ hello: { agentVersion: "test" } });
      });
      assert.match(end.details, /^DS_DEVICE_CERT_REQUIRED: /);
    } finally {
      hub.close();
    }
  });

  it("an agent enrols, reports its status, keeps its certificate across restarts and shows disconnected when killed", async () => {
    const ns = await env.namespace("agent-status");
    await createDevice(env, ns, "pump");
    const setup = await agentFiles(env, ns, "pump");
    let a = agent(port, ns, "pump", setup, ["ssh=127.0.0.1:22", "web=127.0.0.1:8080"]);
    const dev = await connected(ns, "pump", true);
    assert.deepEqual(
      dev.status?.services?.map((s) => s.name),
      ["ssh", "web"],
    );
    assert.ok(dev.status?.agentVersion);
    assert.ok(Date.parse(dev.status!.lastSeen!) > Date.now() - 60_000);
    assert.ok(dev.spec.identity?.publicKeySHA256);
    for (const f of ["device.key", "device.crt"]) {
      assert.equal(statSync(join(setup.dir, "state", f)).mode & 0o777, 0o600, f);
    }
    await a.waitFor(/enrolled with the hub/);

    await a.stop("SIGKILL");
    await connected(ns, "pump", false);

    // No token this time: the stored certificate is the credential.
    a = agent(port, ns, "pump", setup, ["ssh=127.0.0.1:22"], { token: false });
    const back = await connected(ns, "pump", true);
    assert.deepEqual(
      back.status?.services?.map((s) => s.name),
      ["ssh"],
    );
    assert.doesNotMatch(a.logs, /enrolled with the hub/);
  });

  it("offers streams: accepted when the allow-list has the service, refused with the agent's reason when not", async () => {
    const ns = await env.namespace("offers");
    await createDevice(env, ns, "edge");
    const setup = await agentFiles(env, ns, "edge");
    agent(port, ns, "edge", setup, ["ssh=127.0.0.1:22"]);
    await connected(ns, "edge", true);
    await env.createStream(ns, "ok", streamSpec("edge", "ssh"));
    await env.createStream(ns, "nope", streamSpec("edge", "vnc"));
    await ready(ns, "ok");
    await ready(ns, "nope");

    const ok = await waitFor("stream ok accepted", async () => {
      const ds = await env.getStream(ns, "ok");
      return cond(ds, "DeviceAccepted")?.status === "True" ? ds : undefined;
    });
    assert.equal(cond(ok, "DeviceAccepted")?.reason, "Accepted");
    await eventWith(ns, "ok", "Offered");
    await eventWith(ns, "ok", "Accepted");

    const nope = await waitFor("stream nope failed", async () => {
      const ds = await env.getStream(ns, "nope");
      return ds.status?.phase === "Failed" ? ds : undefined;
    });
    assert.equal(cond(nope, "Ready")?.reason, "DeviceRefused");
    assert.equal(cond(nope, "DeviceAccepted")?.reason, "Refused");
    assert.match(
      cond(nope, "DeviceAccepted")!.message,
      /DS_SERVICE_NOT_ALLOWED: service "vnc" is not in this device's allow-list/,
    );
    const ev = await eventWith(ns, "nope", "Refused");
    assert.match(ev.note, /DS_SERVICE_NOT_ALLOWED/);
  });

  it("a deleted Device is revoked at once: its open session is cut and neither it nor a re-created namesake admits the old certificate", async () => {
    const ns = await env.namespace("revoke");
    await createDevice(env, ns, "doomed");
    const setup = await agentFiles(env, ns, "doomed");
    const a = agent(port, ns, "doomed", setup, ["ssh=127.0.0.1:22"]);
    await connected(ns, "doomed", true);
    await a.waitFor(/control session with the hub is open/);
    await env.createStream(ns, "doomed-s", streamSpec("doomed", "ssh"));
    await ready(ns, "doomed-s");
    await waitFor("stream doomed-s accepted", async () => {
      const ds = await env.getStream(ns, "doomed-s");
      return cond(ds, "DeviceAccepted")?.status === "True" ? ds : undefined;
    });
    const t0 = Date.now();
    await env.admin.delete(objectPath(devices, ns, "doomed"));
    await a.waitFor(/DS_DEVICE_REVOKED/, 10_000);
    assert.ok(Date.now() - t0 < 5000, `session cut after ${Date.now() - t0} ms`);
    const ended = await waitFor("stream doomed-s to end", async () => {
      const ds = await env.getStream(ns, "doomed-s");
      return ds.status?.phase === "Failed" ? ds : undefined;
    });
    assert.equal(cond(ended, "Ready")?.reason, "DeviceDeleted");
    // Its reconnects are refused too, also once a new Device of the same name exists.
    await createDevice(env, ns, "doomed");
    const count = () => a.logs.match(/access revoked by the hub; retrying/g)?.length ?? 0;
    const before = count();
    await waitFor("another refused reconnect", () => count() > before + 1, 30_000);
    assert.doesNotMatch(a.logs.split("DS_DEVICE_REVOKED")[1] ?? "", /control session with the hub is open/);
  });

  it("renews the device certificate over the session, with the same key, before it expires", async () => {
    // Certificates start 5 minutes in the past (clock drift), so a 1-minute validity is due for
    // renewal at once.
    const op3 = await startOperator(
      await env.operatorOptions(["--identity=replica-renew", "--device-cert-validity=1m"]),
      { kubeConfig: env.operatorKubeConfig, log: createLogger("operator-renew") },
    );
    try {
      const ns = await env.namespace("renew");
      await createDevice(env, ns, "fresh");
      const setup = await agentFiles(env, ns, "fresh");
      const crt = join(setup.dir, "state", "device.crt");
      const a = agent(await hubPort(op3), ns, "fresh", setup, ["ssh=127.0.0.1:22"]);
      await a.waitFor(/enrolled with the hub/);
      const first = readFileSync(crt, "utf8");
      await a.waitFor(/device certificate renewed/);
      const renewed = readFileSync(crt, "utf8");
      assert.notEqual(renewed, first);
      assert.equal(statSync(crt).mode & 0o777, 0o600);
      const key = readFileSync(join(setup.dir, "state", "device.key"), "utf8");
      const end = "-----END CERTIFICATE-----\n";
      const leafKey = (chain: string) => publicKeySha256(`${chain.split(end)[0]}${end}`);
      assert.equal(leafKey(renewed), leafKey(first), "the renewed certificate is for the same key");
      assert.ok(key.includes("PRIVATE KEY"));
    } finally {
      await op3.stop();
    }
  });

  it("two replicas: a device whose session the non-leader holds still gets its streams offered", async () => {
    const op2 = await startOperator(await env.operatorOptions(["--identity=replica-b"]), {
      kubeConfig: env.operatorKubeConfig,
      log: createLogger("operator-b"),
    });
    try {
      const port2 = await hubPort(op2);
      assert.equal(op2.isLeader(), false);
      const ns = await env.namespace("replicas");
      await createDevice(env, ns, "far");
      const setup = await agentFiles(env, ns, "far");
      agent(port2, ns, "far", setup, ["ssh=127.0.0.1:22"]);
      const dev = await connected(ns, "far", true);
      assert.match(dev.status!.conditions!.find((c) => c.type === "Connected")!.message, /replica-b/);
      await env.createStream(ns, "via-b", streamSpec("far", "ssh"));
      await ready(ns, "via-b");
      await waitFor("stream via-b accepted", async () => {
        const ds = await env.getStream(ns, "via-b");
        return cond(ds, "DeviceAccepted")?.status === "True" ? ds : undefined;
      });
      assert.equal(op2.isLeader(), false);
    } finally {
      await op2.stop();
    }
  });
});
