// The hub against a real kube-apiserver: enrolment through the real flow, agents as real
// processes, offers answered by their allow-lists, revocation, and a session on a replica that
// does not lead.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { status as grpcStatus, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { core, objectPath } from "../../kube/client.ts";
import type { KubeList } from "../../kube/types.ts";
import { enrollmentRefused } from "../../operator/hub/enroll-service.ts";
import { makeEnrollmentToken } from "../../operator/hub/enrollment-token.ts";
import { hubTokenKey } from "../../operator/hub/token-key.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { startOperator } from "../../operator/main.ts";
import { deviceFromCertificate } from "../../runtime/device-certificate.ts";
import { defaultKeepalive } from "../../runtime/grpc-options.ts";
import { createLogger } from "../../runtime/log.ts";
import { createCertificateRequest, publicKeySha256 } from "../../runtime/pki.ts";
import { HubClient } from "../../transport/hub-client.ts";
import { stopAfterTest } from "../helpers/cleanup.ts";
import type { ComponentProcess } from "../helpers/component-process.ts";
import { startRecordingProxy } from "../helpers/recording-proxy.ts";
import { waitFor } from "../helpers/wait.ts";
import { devices, OperatorEnv, operatorNamespace } from "../operator/env.ts";
import {
  agentFiles,
  caPem,
  createDevice,
  enrollmentToken,
  getDevice,
  hubPort,
  metricValue,
  startAgent,
} from "./hub-env.ts";

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
    // Every test enrols from 127.0.0.1: the per-address limit has a test (and an operator) of its own.
    op = await env.startOperator(["--hub-enroll-burst=100"]);
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

  const hubClient = async (hubPortNumber: number) =>
    new HubClient({
      address: `127.0.0.1:${hubPortNumber}`,
      tls: { caPem: (await caPem(env)).certPem },
      keepalive: defaultKeepalive,
    });
  /** What the caller was told, as [gRPC code, details]. */
  const answer = (p: Promise<unknown>) =>
    p.then(
      () => assert.fail("the enrolment was accepted"),
      (err: ServiceError) => [err.code, err.details] as const,
    );
  const refusedAnswer = [grpcStatus.PERMISSION_DENIED, `${enrollmentRefused.code}: ${enrollmentRefused.message}`];
  const refusalEvent = (ns: string, name: string, reason: string) =>
    waitFor(`EnrollmentRefused (${reason}) on Device ${ns}/${name}`, async () =>
      (await env.admin.get<KubeList<EventObj>>(`/apis/events.k8s.io/v1/namespaces/${ns}/events`)).items.find(
        (e) => e.regarding.name === name && e.reason === "EnrollmentRefused" && e.note.includes(`(${reason})`),
      ),
    );

  it("enrols a device with its token; another device's, an expired, a reused token, an unknown or disabled device all get one answer, and the Device says why", async () => {
    const ns = await env.namespace("enrol");
    const a = await createDevice(env, ns, "alpha");
    await createDevice(env, ns, "beta");
    await createDevice(env, ns, "delta", { disabled: true });
    const ca = await caPem(env);
    const token = await enrollmentToken(env, ns, "alpha");
    const hub = await hubClient(port);
    try {
      const { csrPem } = await createCertificateRequest("x");
      const expired = makeEnrollmentToken(hubTokenKey(ca), a.metadata.uid!, Date.now() - 1000);
      const wrongDevice = await answer(hub.enroll({ token, namespace: ns, name: "beta", csrPem }));
      const unknownDevice = await answer(hub.enroll({ token, namespace: ns, name: "gamma", csrPem }));
      // The point: nobody without a valid token learns whether a Device exists.
      assert.deepEqual(unknownDevice, wrongDevice);
      assert.deepEqual(wrongDevice, refusedAnswer);
      assert.deepEqual(
        await answer(hub.enroll({ token: expired, namespace: ns, name: "alpha", csrPem })),
        refusedAnswer,
      );
      const deltaToken = await enrollmentToken(env, ns, "delta");
      assert.deepEqual(
        await answer(hub.enroll({ token: deltaToken, namespace: ns, name: "delta", csrPem })),
        refusedAnswer,
      );

      const res = await hub.enroll({ token, namespace: ns, name: "alpha", csrPem });
      const leaf = res.certificateChainPem!.split("-----END CERTIFICATE-----")[0]!;
      const der = Buffer.from(leaf.replace(/-----[^-]+-----|\s/g, ""), "base64");
      const id = await deviceFromCertificate(der, ca.certPem);
      assert.deepEqual([id.namespace, id.name, id.uid], [ns, "alpha", a.metadata.uid]);
      const enrolled = await getDevice(env, ns, "alpha");
      assert.equal(enrolled.spec.identity?.publicKeySHA256, publicKeySha256(csrPem));
      await eventWith(ns, "alpha", "Enrolled");

      const again = await createCertificateRequest("x");
      assert.deepEqual(
        await answer(hub.enroll({ token, namespace: ns, name: "alpha", csrPem: again.csrPem })),
        refusedAnswer,
      );

      // The operator's side learns the precise reason: an Event on the Device and the metric.
      assert.match((await refusalEvent(ns, "beta", "token_invalid")).note, /DS_ENROLLMENT_TOKEN_INVALID/);
      assert.match((await refusalEvent(ns, "alpha", "token_expired")).note, /DS_ENROLLMENT_TOKEN_EXPIRED/);
      assert.match((await refusalEvent(ns, "delta", "disabled")).note, /spec\.disabled/);
      assert.match((await refusalEvent(ns, "alpha", "already_enrolled")).note, /already enrolled/);
      for (const result of ["ok", "token_invalid", "not_found", "token_expired", "disabled", "already_enrolled"]) {
        const n = await metricValue(op, "devicestreams_hub_enrollments_total", `result="${result}"`);
        assert.ok(n >= 1, `enrolments with result ${result}: ${n}`);
      }

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

  it("a hello advertising too many services, or a name the Device cannot hold, ends the session with DS_HELLO_INVALID and writes nothing", async () => {
    const ns = await env.namespace("hello");
    await createDevice(env, ns, "chatty");
    const { csrPem, keyPem } = await createCertificateRequest("x");
    const enrolling = await hubClient(port);
    const res = await enrolling.enroll({
      token: await enrollmentToken(env, ns, "chatty"),
      namespace: ns,
      name: "chatty",
      csrPem,
    });
    enrolling.close();
    const hub = new HubClient({
      address: `127.0.0.1:${port}`,
      tls: { caPem: (await caPem(env)).certPem, certPem: res.certificateChainPem!, keyPem },
      keepalive: defaultKeepalive,
    });
    try {
      for (const [services, why] of [
        [Array.from({ length: 257 }, (_, i) => `s${i}`), /advertises 257 services; at most 256/],
        [["ssh", "x".repeat(64)], /longer than 63 characters/],
        [["ssh", "\x1b[2J"], /not a DNS-1123 label/],
      ] as const) {
        const call = hub.session();
        const end = await new Promise<StatusObject>((resolve) => {
          call.on("status", resolve);
          call.on("error", () => {});
          call.write({ hello: { agentVersion: "test", services: [...services] } });
        });
        assert.equal(end.code, grpcStatus.INVALID_ARGUMENT);
        assert.match(end.details, /^DS_HELLO_INVALID: /);
        assert.match(end.details, why);
      }
    } finally {
      hub.close();
    }
    assert.equal((await getDevice(env, ns, "chatty")).status?.services, undefined, "no service was recorded");
  });

  it("a traversal payload as the device's namespace or name is refused before any I/O: the operator asks the API server for nothing it did not choose", async () => {
    // This replica reaches the API server through a proxy that records every request.
    const proxy = await startRecordingProxy(env.operatorKubeConfig);
    const op4 = await startOperator(
      await env.operatorOptions(["--identity=replica-recorded", "--hub-enroll-burst=100"]),
      {
        kubeConfig: proxy.kubeConfig,
        log: createLogger("operator-recorded"),
      },
    );
    const hub = await hubClient(await hubPort(op4));
    try {
      const { csrPem } = await createCertificateRequest("x");
      const payload = "../../../../api/v1/pods?watch=true#";
      const from = proxy.requests.length;
      const names: Array<[string, string, RegExp]> = [
        [
          payload,
          "x",
          /^DS_INVALID_NAME: device namespace "\.\.\/\.\.\/\.\.\/\.\.\/api\/v1\/pods\?watch=true#" is not a DNS-1123 label/,
        ],
        ["default", payload, /^DS_INVALID_NAME: device name ".*" is not a DNS-1123 subdomain/],
        ["%2e%2e", "x", /^DS_INVALID_NAME: device namespace "%2e%2e"/],
        ["default", "..", /^DS_INVALID_NAME: device name "\.\."/],
        ["default", `a${"b".repeat(253)}`, /^DS_INVALID_NAME: device name ".*…" is longer than 253 characters/],
      ];
      for (const [namespace, name, details] of names) {
        // A deadline: the old hub answered only when its GET did, and a watch never ends.
        const [code, text] = await answer(hub.enroll({ token: "dse1.1.x", namespace, name, csrPem }, 5000));
        assert.equal(code, grpcStatus.INVALID_ARGUMENT, text);
        assert.match(text, details);
      }
      // Valid names of no Device: answered from the cache, so no request either.
      assert.deepEqual(
        await answer(hub.enroll({ token: "dse1.1.x", namespace: "default", name: "nobody", csrPem }, 5000)),
        refusedAnswer,
      );
      const during = proxy.requests.slice(from);
      assert.deepEqual(
        during.filter((r) => r.userAgent === "devicestreams-hub"),
        [],
        "the hub's own client made no request",
      );
      // What the replica did meanwhile is its own routine: the Lease, and watches of the four
      // resources it caches (Pods and Services only by its label selector).
      const own = [
        `/apis/coordination.k8s.io/v1/namespaces/${operatorNamespace}/leases/devicestreams-operator`,
        "/apis/devicestreams.io/v1alpha1/devicestreams",
        "/apis/devicestreams.io/v1alpha1/devices",
        "/api/v1/pods",
        "/api/v1/services",
      ];
      const routine = (url: string) => {
        const [path, query = ""] = url.split("?");
        return own.includes(path!) && (!path!.startsWith("/api/v1/") || query.includes("labelSelector="));
      };
      assert.deepEqual(
        during.filter((r) => !routine(r.url)),
        [],
      );
    } finally {
      hub.close();
      await op4.stop();
      await proxy.close();
    }
  });

  it("limits enrolment per source address: the attempt after the burst is refused with RESOURCE_EXHAUSTED, a successful one is not counted", async () => {
    const ns = await env.namespace("enrol-limit");
    await createDevice(env, ns, "first");
    await createDevice(env, ns, "second");
    const first = await enrollmentToken(env, ns, "first");
    const second = await enrollmentToken(env, ns, "second");
    const burst = 3;
    const op5 = await startOperator(
      await env.operatorOptions([
        "--identity=replica-limited",
        `--hub-enroll-burst=${burst}`,
        "--hub-enroll-per-minute=1",
      ]),
      { kubeConfig: env.operatorKubeConfig, log: createLogger("operator-limited") },
    );
    const hub = await hubClient(await hubPort(op5));
    try {
      await waitFor("the replica's caches", async () => (await fetch(`http://127.0.0.1:${op5.metricsPort}/readyz`)).ok);
      const { csrPem } = await createCertificateRequest("x");
      await hub.enroll({ token: first, namespace: ns, name: "first", csrPem });
      for (let i = 0; i < burst; i++) {
        assert.deepEqual(
          await answer(hub.enroll({ token: "dse1.1.x", namespace: ns, name: `nobody-${i}`, csrPem })),
          refusedAnswer,
        );
      }
      // Attempt N+1 within the minute, even with a valid token, is refused before anything else.
      const limited = await answer(hub.enroll({ token: second, namespace: ns, name: "second", csrPem }));
      assert.equal(limited[0], grpcStatus.RESOURCE_EXHAUSTED, limited[1]);
      assert.match(
        limited[1],
        /^DS_ENROLLMENT_RATE_LIMITED: too many enrolment attempts from this address; retry in \d+s$/,
      );
      assert.equal((await getDevice(env, ns, "second")).spec.identity, undefined);
      const count = (result: string) => metricValue(op5, "devicestreams_hub_enrollments_total", `result="${result}"`);
      assert.deepEqual([await count("ok"), await count("not_found"), await count("rate_limited")], [1, burst, 1]);
    } finally {
      hub.close();
      await op5.stop();
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

  it("a stream records the Device that accepted it and ends, relay and all, when that Device is disabled or created again", async () => {
    const ns = await env.namespace("revoke-streams");
    await createDevice(env, ns, "edge");
    const setup = await agentFiles(env, ns, "edge");
    const a = agent(port, ns, "edge", setup, ["ssh=127.0.0.1:22"]);
    await connected(ns, "edge", true);
    const accepted = async (stream: string) => {
      await env.createStream(ns, stream, streamSpec("edge", "ssh"));
      await ready(ns, stream);
      return waitFor(`stream ${stream} accepted`, async () => {
        const ds = await env.getStream(ns, stream);
        return cond(ds, "DeviceAccepted")?.status === "True" && ds.status?.device ? ds : undefined;
      });
    };
    const endedWithin = async (stream: string, ms: number) => {
      const t0 = Date.now();
      const ds = await waitFor(`stream ${stream} to end`, async () => {
        const d = await env.getStream(ns, stream);
        return d.status?.phase === "Failed" ? d : undefined;
      });
      await waitFor(`relay Pod of ${stream} deleted`, () => env.gone(core.pods, ns, `${stream}-relay`));
      assert.ok(Date.now() - t0 < ms, `ended and relay gone after ${Date.now() - t0} ms`);
      return ds;
    };

    const device = await getDevice(env, ns, "edge");
    const first = await accepted("by-edge");
    assert.deepEqual(first.status?.device, {
      uid: device.metadata.uid,
      publicKeySHA256: device.spec.identity?.publicKeySHA256,
    });
    await env.admin.jsonPatch(
      objectPath(devices, ns, "edge"),
      [{ op: "replace", path: "/spec/disabled", value: true }],
      "tests",
    );
    const disabled = await endedWithin("by-edge", 10_000);
    assert.equal(cond(disabled, "Ready")?.reason, "DeviceRevoked");
    assert.match(cond(disabled, "Ready")!.message, /Device "edge" was disabled/);
    await eventWith(ns, "by-edge", "DeviceRevoked");
    await a.waitFor(/DS_DEVICE_DISABLED/, 10_000);

    // Enabled again, a new stream; then the Device is deleted and created again under the same name
    // before the stream's reconciler saw it gone: the new Device did not accept the stream.
    await env.admin.jsonPatch(
      objectPath(devices, ns, "edge"),
      [{ op: "replace", path: "/spec/disabled", value: false }],
      "tests",
    );
    await connected(ns, "edge", true);
    const second = await accepted("by-edge-2");
    await env.admin.delete(objectPath(devices, ns, "edge"));
    await waitFor("Device edge gone", () => env.gone(devices, ns, "edge"));
    const again = await createDevice(env, ns, "edge");
    assert.notEqual(again.metadata.uid, second.status?.device?.uid);
    const recreated = await endedWithin("by-edge-2", 15_000);
    assert.match(cond(recreated, "Ready")?.reason ?? "", /^Device(Deleted|Revoked)$/);
  });

  it("renews the device certificate over the session, with the same key, before it expires", async () => {
    // Certificates start 5 minutes in the past (clock drift), so a 1-minute validity is due for
    // renewal at once.
    const op3 = stopAfterTest(
      await startOperator(await env.operatorOptions(["--identity=replica-renew", "--device-cert-validity=1m"]), {
        kubeConfig: env.operatorKubeConfig,
        log: createLogger("operator-renew"),
      }),
    );
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
  });

  it("the leader marks a Device disconnected once no replica has heard from it for 90 s, not before", async () => {
    // What a replica killed without a goodbye leaves behind: connected, held by a replica that is gone.
    const ns = await env.namespace("stale");
    const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
    const leftConnected = async (name: string, lastSeenMs: number) => {
      const d = await createDevice(env, ns, name);
      const status = {
        connected: true,
        lastSeen: rfc3339(lastSeenMs),
        conditions: [
          {
            type: "Connected",
            status: "True",
            reason: "SessionOpen",
            message: "the agent holds a control session with hub replica vanished-1",
            lastTransitionTime: rfc3339(lastSeenMs),
          },
        ],
      };
      const body = { apiVersion: d.apiVersion, kind: d.kind, metadata: { name, namespace: ns }, status };
      await env.admin.apply(`${objectPath(devices, ns, name)}/status`, body, "devicestreams-hub");
    };
    const lost = (name: string) =>
      waitFor(
        `Device ${ns}/${name} marked disconnected`,
        async () => {
          const d = await getDevice(env, ns, name);
          return d.status?.connected === false ? d : undefined;
        },
        60_000,
      );
    const longAgo = Date.now() - 5 * 60_000;
    await leftConnected("long-gone", longAgo);
    // Seen 70 s ago: stale 20 s from now.
    const recentlySeen = Date.now() - 70_000;
    await leftConnected("recent", recentlySeen);

    const gone = await lost("long-gone");
    const message = gone.status!.conditions!.find((c) => c.type === "Connected")!.message;
    assert.match(message, /no hub replica has heard from the agent since .*its replica vanished-1 is gone/);
    assert.equal((await getDevice(env, ns, "recent")).status?.connected, true, "not stale yet");
    const recent = await lost("recent");
    const markedAt = Date.parse(recent.status!.conditions!.find((c) => c.type === "Connected")!.lastTransitionTime);
    // lastTransitionTime has whole seconds.
    assert.ok(markedAt >= recentlySeen + 90_000 - 1000, `marked ${recentlySeen + 90_000 - markedAt} ms early`);
  });

  it("two replicas: a device whose session the non-leader holds still gets its streams offered", async () => {
    const op2 = stopAfterTest(
      await startOperator(await env.operatorOptions(["--identity=replica-b"]), {
        kubeConfig: env.operatorKubeConfig,
        log: createLogger("operator-b"),
      }),
    );
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
  });
});
