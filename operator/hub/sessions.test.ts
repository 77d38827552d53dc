import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import type { Pod } from "../../kube/types.ts";
import type { PresentedCertificate } from "../../runtime/device-certificate.ts";
import { quietLog, tick } from "../../test/helpers/fake-streams.ts";
import { AgentSession, type SessionDeps } from "./sessions.ts";

/** The gRPC call as the session uses it: events in, writes recorded. */
class FakeCall extends EventEmitter {
  readonly written: Array<Record<string, unknown>> = [];
  writableEnded = false;
  write(m: Record<string, unknown>): boolean {
    this.written.push(m);
    return true;
  }
  end(): void {
    this.writableEnded = true;
  }
}

describe("hub session: offers", () => {
  it("offers nothing until the Pod cache has listed, so a working relay address is never replaced by the Service's", async () => {
    const ds = {
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "DeviceStream",
      metadata: { name: "s", namespace: "ns", uid: "u1", creationTimestamp: new Date().toISOString() },
      spec: { device: "edge", service: "ssh", timeouts: { connect: "5m", idle: "15m", maxLifetime: "8h" } },
      status: {
        conditions: [{ type: "RelayReady", status: "True", reason: "Ready", message: "", lastTransitionTime: "" }],
        relay: { endpoint: "s-relay.ns.svc:8443", tlsServerName: "s-relay.ns.svc" },
      },
    } as unknown as DeviceStream;
    const pod = {
      metadata: {
        name: "s-relay",
        namespace: "ns",
        ownerReferences: [
          { apiVersion: "devicestreams.io/v1alpha1", kind: "DeviceStream", name: "s", uid: "u1", controller: true },
        ],
      },
      status: { podIP: "10.1.2.3" },
    } as Pod;
    const pods = { synced: false, get: () => (pods.synced ? pod : undefined) };
    const deps = {
      replica: "r0",
      devices: { get: () => undefined },
      streams: { synced: true, get: () => ds, list: () => [ds], byIndex: () => [ds] },
      pods,
      reports: { offered: () => {}, device: async () => {} },
      ca: { certPem: "ca", keyPem: "key" },
      tokenKey: Buffer.alloc(32),
      certValidityMs: 3600_000,
      lastSeenEveryMs: 60_000,
      helloTimeoutMs: 60_000,
      metrics: { offers: { inc: () => {} } },
      log: quietLog,
    } as unknown as SessionDeps;
    const call = new FakeCall();
    const id = { namespace: "ns", name: "edge", uid: "d1" } as PresentedCertificate;
    const session = new AgentSession(call as never, id, deps);
    session.start();
    call.emit("data", { hello: { agentVersion: "test", services: ["ssh"] } });
    await tick();
    const offers = () =>
      call.written.filter((m) => m.offer).map((m) => (m.offer as { relayAddress: string }).relayAddress);
    assert.deepEqual(offers(), [], "an offer before the Pod cache listed");
    pods.synced = true;
    session.sync();
    assert.deepEqual(offers(), ["10.1.2.3:8443"]);
    const offer = call.written.find((m) => m.offer)?.offer as { service: string; services: string[] };
    assert.deepEqual([offer.service, offer.services], ["ssh", ["ssh"]], "older agents read service, newer services");
    session.fail(1, "DS_PROTOCOL", "test over");
  });
});
