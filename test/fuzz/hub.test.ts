// Fuzz target: the hub's inputs from devices. Enroll requests of any content (names, tokens, CSRs)
// must be refused with a HubError before any API request, unless they carry a valid token for a
// Device that may enrol and a CSR; and a Session's messages in any order and content may only ever
// touch the API objects of the session's own Device and its streams, and renew only for its key.
// The API client is a recorder: it answers every request with {} and keeps the path.
import assert from "node:assert/strict";
import { status as grpcStatus, type ServerDuplexStream } from "@grpc/grpc-js";
import fc from "fast-check";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import type { KubeClient } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import type { KubeObject, Pod } from "../../kube/types.ts";
import type { EventRecorder } from "../../operator/events.ts";
import { EnrollService } from "../../operator/hub/enroll-service.ts";
import { HubError } from "../../operator/hub/enrollment.ts";
import { makeEnrollmentToken, tokenKey } from "../../operator/hub/enrollment-token.ts";
import { hubMetrics } from "../../operator/hub/metrics.ts";
import { HubReports } from "../../operator/hub/reports.ts";
import { AgentSession } from "../../operator/hub/sessions.ts";
import { createRegistry } from "../../runtime/http-endpoints.ts";
import {
  createCertificateAuthority,
  createCertificateRequest,
  type KeyPairPem,
  publicKeySha256,
} from "../../runtime/pki.ts";
import type { AgentControl, HubControl } from "../../transport/hub-service.ts";
import { FakeStream, quietLog } from "../helpers/fake-streams.ts";
import { fuzz, fuzzTimeoutMs } from "./harness.ts";

/** A KubeClient that makes no request: it records each one and answers {}. */
function recordingClient(): { client: KubeClient; requests: string[] } {
  const requests: string[] = [];
  const client = new Proxy(
    {},
    {
      get: (_t, method) => async (path: unknown) => {
        requests.push(`${String(method)} ${String(path)}`);
        return {};
      },
    },
  ) as KubeClient;
  return { client, requests };
}

function recordingEvents(): { events: EventRecorder; about: string[] } {
  const about: string[] = [];
  const events = {
    record: (o: KubeObject) => about.push(`${o.metadata.namespace}/${o.metadata.name}`),
  } as unknown as EventRecorder;
  return { events, about };
}

function informer<T extends KubeObject>(objects: T[]): Informer<T> {
  return {
    synced: true,
    get: (ns: string, name: string) => objects.find((o) => o.metadata.namespace === ns && o.metadata.name === name),
    list: (ns?: string) => objects.filter((o) => ns === undefined || o.metadata.namespace === ns),
    on: () => {},
  } as unknown as Informer<T>;
}

const device = (name: string, spec: Device["spec"], extra: Partial<Device["metadata"]> = {}): Device => ({
  apiVersion: "devicestreams.io/v1alpha1",
  kind: "Device",
  metadata: { namespace: "edge", name, uid: `uid-${name}`, ...extra },
  spec,
});

describe("fuzz: hub inputs", function () {
  this.timeout(fuzzTimeoutMs());
  let ca: KeyPairPem;
  let key: Buffer;
  let csrA: string;
  let csrB: string;
  let devices: Device[];
  before(async () => {
    ca = await createCertificateAuthority("fuzz hub CA");
    key = tokenKey(ca.keyPem, "hub tokens");
    csrA = (await createCertificateRequest("a")).csrPem;
    csrB = (await createCertificateRequest("b")).csrPem;
    const a = publicKeySha256(csrA);
    devices = [
      device("fresh", { disabled: false }),
      device("enrolled", { disabled: false, identity: { publicKeySHA256: a } }),
      device("reenroll", { disabled: false, identity: { publicKeySHA256: a, reenroll: true } }),
      device("disabled", { disabled: true }),
      device("deleting", { disabled: false }, { deletionTimestamp: "2026-01-01T00:00:00Z" }),
    ];
  });

  it("refuses any Enroll request before any API request, unless its token and CSR are valid", async () => {
    const names = fc.oneof(
      fc.constantFrom("fresh", "enrolled", "reenroll", "disabled", "deleting", "absent"),
      fc.string({ maxLength: 70 }),
      fc.constantFrom("../secrets", "a/b", "A", "-a", "a".repeat(300), "fresh\n", ""),
    );
    const tokenFor = fc.record({
      device: fc.constantFrom("fresh", "enrolled", "reenroll", "disabled", "absent"),
      expiresInMs: fc.oneof(fc.constant(60_000), fc.integer({ min: -60_000, max: 60_000 })),
      replaces: fc.constantFrom(undefined, "a", "b"),
      suffix: fc.constantFrom("", "\n", "x"),
    });
    const request = fc.record({
      peer: fc.constantFrom("ipv4:10.0.0.1:5000", "ipv6:[::1]:5000", "unix:x", ""),
      namespace: fc.oneof(fc.constant("edge"), names),
      name: names,
      token: fc.oneof(tokenFor, fc.string({ maxLength: 80 })),
      csr: fc.oneof(fc.constantFrom("a", "b", "garbage"), fc.string({ maxLength: 40 })),
    });
    await fuzz(
      "hub-enroll",
      request,
      async (r) => {
        const { client, requests } = recordingClient();
        const { events } = recordingEvents();
        const keyHash = (k: string) => publicKeySha256(k === "a" ? csrA : csrB);
        const token =
          typeof r.token === "string"
            ? r.token
            : makeEnrollmentToken(
                key,
                `uid-${r.token.device}`,
                Date.now() + r.token.expiresInMs,
                r.token.replaces && keyHash(r.token.replaces),
              ) + r.token.suffix;
        const csrPem =
          r.csr === "a" ? csrA : r.csr === "b" ? csrB : r.csr === "garbage" ? "-----BEGIN CSR-----" : r.csr;
        const service = new EnrollService(
          {
            client,
            devices: informer(devices.map((d) => structuredClone(d))),
            ca,
            tokenKey: key,
            certValidityMs: 3600_000,
            events,
            log: quietLog,
          },
          { perMinute: 1e9, burst: 1e9 },
          hubMetrics(createRegistry("operator")),
        );
        let refused: HubError | undefined;
        try {
          await service.handle(r.peer, { namespace: r.namespace, name: r.name, token, csrPem });
        } catch (err) {
          assert.ok(err instanceof HubError, `threw ${(err as Error)?.stack ?? err}`);
          assert.ok(Object.values(grpcStatus).includes(err.grpcCode));
          assert.match(err.details, /^DS_[A-Z_]+: \S/);
          refused = err;
        }
        // Which requests may reach the API server: a valid, current token of a Device that may enrol
        // (a first enrolment's without `replaces`, a re-enrolment's bound to the key it replaces).
        const t = typeof r.token === "string" ? undefined : r.token;
        const mayEnrol =
          r.namespace === "edge" &&
          t !== undefined &&
          t.device === r.name &&
          t.expiresInMs > 1000 &&
          t.suffix !== "x" &&
          ((r.name === "fresh" && t.replaces === undefined) || (r.name === "reenroll" && t.replaces === "a")) &&
          (r.csr === "a" || r.csr === "b");
        if (!mayEnrol) {
          assert.deepEqual(requests, [], "an API request before the request was shown valid");
          assert.ok(refused, "an invalid request was not refused");
        } else {
          assert.ok(refused === undefined || !refused.message.includes("TypeError"));
          for (const req of requests) assert.match(req, new RegExp(`/namespaces/edge/devices/${r.name}( |$)`));
        }
      },
      { shortRuns: 400 },
    );
  });

  it("lets a session touch only its own Device and streams, and renew only its own key", async () => {
    const streams: DeviceStream[] = [
      ["mine", "enrolled", "edge"],
      ["theirs", "fresh", "edge"],
      ["elsewhere", "enrolled", "other"],
    ].map(([name, dev, ns]) => ({
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "DeviceStream",
      metadata: {
        name,
        namespace: ns,
        uid: `uid-s-${name}`,
        creationTimestamp: new Date().toISOString(),
        generation: 1,
      },
      spec: {
        device: dev!,
        service: "ssh",
        timeouts: { connect: "5m", idle: "15m", maxLifetime: "8h" },
        limits: { maxConnections: 1 },
        relay: { exposure: "ClusterIP" },
      },
    }));
    const streamKey = fc.oneof(
      fc.constantFrom("edge/mine", "edge/theirs", "other/elsewhere", "edge/absent", "edge/", "/mine", "mine"),
      fc.string({ maxLength: 30 }),
    );
    const message: fc.Arbitrary<AgentControl> = fc.oneof(
      fc.record({ hello: fc.record({ agentVersion: fc.string(), services: fc.array(fc.string(), { maxLength: 3 }) }) }),
      fc.constant({ heartbeat: { sentAtMs: 1 } }),
      fc.record({
        offerReply: fc.record(
          { stream: streamKey, refused: fc.record({ code: fc.string(), message: fc.string() }) },
          { requiredKeys: ["stream"] },
        ),
      }),
      fc.record({
        streamState: fc.oneof(
          fc.record({ stream: streamKey, connected: fc.constant({}) }),
          fc.record({ stream: streamKey, closed: fc.record({ reason: fc.string() }) }),
        ),
      }),
      fc.record({ renewRequest: fc.record({ csrPem: fc.oneof(fc.constantFrom("a", "b"), fc.string()) }) }),
    );
    await fuzz(
      "hub-session",
      fc.array(message, { maxLength: 10 }),
      async (messages) => {
        const { client, requests } = recordingClient();
        const { events, about } = recordingEvents();
        const call = new FakeStream();
        const session = new AgentSession(
          call as unknown as ServerDuplexStream<AgentControl, HubControl>,
          {
            namespace: "edge",
            name: "enrolled",
            uid: "uid-enrolled",
            publicKeySha256: publicKeySha256(csrA),
            notAfter: new Date(Date.now() + 3600_000),
          },
          {
            replica: "fuzz",
            devices: informer(devices),
            streams: informer(streams),
            pods: informer<Pod>([]),
            reports: new HubReports(client, events, quietLog),
            ca,
            tokenKey: key,
            certValidityMs: 3600_000,
            lastSeenEveryMs: 0,
            helloTimeoutMs: 60_000,
            metrics: hubMetrics(createRegistry("operator")),
            log: quietLog,
          },
        );
        session.start();
        let renewals = 0;
        for (const m of messages) {
          const csr = m.renewRequest?.csrPem;
          const msg = csr === "a" || csr === "b" ? { renewRequest: { csrPem: csr === "a" ? csrA : csrB } } : m;
          if (msg.renewRequest && csr === "a" && messages.some((x) => x.hello) && !call.errors.length) renewals++;
          call.receive(msg);
          await new Promise((r) => setImmediate(r));
        }
        await new Promise((r) => setTimeout(r, 20));
        session.close();
        for (const req of requests) {
          assert.match(
            req,
            /^apply \/apis\/devicestreams\.io\/v1alpha1\/namespaces\/edge\/(devices\/enrolled|devicestreams\/mine)\/status( |$)/,
            "the session touched another object",
          );
        }
        for (const a of about) assert.ok(["edge/enrolled", "edge/mine"].includes(a), `an Event about ${a}`);
        const renewed = (call.written as HubControl[]).filter((w) => w.renewResponse).length;
        assert.ok(renewed <= renewals, `renewed ${renewed} times for ${renewals} renewals with its own key`);
        for (const e of call.errors as Array<{ code: number; details: string }>) {
          assert.match(
            e.details,
            /^DS_[A-Z_]+: \S/,
            `an error without a DS_* detail: ${(e as unknown as Error).stack ?? e}`,
          );
        }
      },
      { shortRuns: 100 },
    );
  });
});
