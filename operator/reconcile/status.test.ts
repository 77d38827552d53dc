import assert from "node:assert/strict";
import type { DeviceStream, DeviceStreamStatus } from "../../api/v1alpha1.ts";
import type { Pod } from "../../kube/types.ts";
import { deviceRevocation } from "./device-revocation.ts";
import { desiredStatus, ending, nextCheckMs, type Observed, sameStatus } from "./status.ts";

const created = Date.parse("2030-01-01T00:00:00Z");
const s = 1000;

function stream(
  status?: DeviceStreamStatus,
  timeouts = { connect: "10s", idle: "30s", maxLifetime: "1h" },
): DeviceStream {
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: {
      name: "st",
      namespace: "ns",
      uid: "0123456789abcdef",
      generation: 1,
      creationTimestamp: "2030-01-01T00:00:00Z",
    },
    spec: {
      device: "edge",
      service: "ssh",
      timeouts,
      limits: { maxConnections: 10 },
      relay: { exposure: "ClusterIP" },
    },
    status,
  };
}

const readyPod: Pod = {
  metadata: { name: "st-relay" },
  status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] },
};
const accepted = (lastTransitionTime = "2030-01-01T00:00:01Z") => ({
  conditions: [
    { type: "DeviceAccepted", status: "True" as const, reason: "Accepted", message: "ok", lastTransitionTime },
  ],
});

function observed(over: Partial<Observed> = {}): Observed {
  return { now: created + s, stream: stream(), admitted: true, clusterDomain: "cluster.local", ...over };
}

const reasonOf = (st: ReturnType<typeof desiredStatus>, type = "Ready") =>
  st.conditions!.find((c) => c.type === type)!.reason;

describe("stream status decisions", () => {
  it("is Pending while the relay starts, WaitingForDevice once it is ready, Connected once the device accepted", () => {
    let st = desiredStatus(observed(), undefined);
    assert.equal(st.phase, "Pending");
    assert.equal(reasonOf(st), "RelayStarting");
    st = desiredStatus(observed({ pod: readyPod }), undefined);
    assert.equal(st.phase, "WaitingForDevice");
    assert.equal(reasonOf(st, "RelayReady"), "RelayReady");
    st = desiredStatus(observed({ pod: readyPod, stream: stream(accepted()) }), undefined);
    assert.equal(st.phase, "Connected");
    assert.equal(st.conditions!.find((c) => c.type === "Ready")!.status, "True");
  });

  it("says why a relay container waits (image pull) in RelayReady", () => {
    const pod: Pod = {
      metadata: { name: "st-relay" },
      status: {
        phase: "Pending",
        containerStatuses: [
          {
            name: "relay",
            ready: false,
            restartCount: 0,
            state: { waiting: { reason: "ImagePullBackOff", message: "no such image" } },
          },
        ],
      },
    };
    const st = desiredStatus(observed({ pod }), undefined);
    assert.equal(reasonOf(st, "RelayReady"), "RelayNotReady");
    assert.match(st.conditions![1]!.message, /ImagePullBackOff: no such image/);
  });

  it("says why a relay Pod cannot be scheduled, in the scheduler's words, in RelayReady", () => {
    const message = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available.";
    const pod: Pod = {
      metadata: { name: "st-relay" },
      status: {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }],
      },
    };
    const st = desiredStatus(observed({ pod }), undefined);
    assert.equal(st.phase, "Pending");
    assert.equal(reasonOf(st, "RelayReady"), "RelayNotReady");
    assert.match(
      st.conditions![1]!.message,
      /st-relay cannot be scheduled: 0\/1 nodes are available: 1 Insufficient cpu/,
    );
    assert.match(st.conditions![1]!.message, /spec\.relay\.resources/);
  });

  it("fails with ConnectTimeout when no device attached within the connect timeout, not before", () => {
    assert.equal(ending(observed({ now: created + 9 * s, pod: readyPod })), undefined);
    const end = ending(observed({ now: created + 10 * s, pod: readyPod }));
    assert.equal(end?.phase, "Failed");
    assert.equal(end?.reason, "ConnectTimeout");
    assert.match(end!.message, /device "edge" to attach/);
    assert.equal(ending(observed({ now: created + 10 * s, pod: readyPod, stream: stream(accepted()) })), undefined);
  });

  it("says at once, in RelayReady and Ready, why the API server refused the relay, and names it at the connect timeout", () => {
    const relayFailure = {
      reason: "RelayInvalid",
      summary: 'the API server refused the relay Pod st-relay as invalid: Pod "st-relay" is invalid: bad',
      message: "… fix the one at fault; the operator tries again in 5s (attempt 1)",
    };
    const st = desiredStatus(observed({ relayFailure }), undefined);
    assert.equal(st.phase, "Pending");
    assert.equal(reasonOf(st, "RelayReady"), "RelayInvalid");
    assert.equal(reasonOf(st), "RelayInvalid");
    assert.match(st.conditions![1]!.message, /tries again in 5s/);
    const end = ending(observed({ now: created + 10 * s, relayFailure }))!;
    assert.equal(end.reason, "ConnectTimeout");
    assert.match(
      end.message,
      /relay was not created within the connect timeout of 10s: .*Pod "st-relay" is invalid: bad/,
    );
    assert.doesNotMatch(end.message, /relay Pod's events/, "no advice about a Pod that does not exist");
  });

  it("fails at once when the operator's configuration refuses spec.relay", () => {
    const refusal = { reason: "ExposureNotAllowed", message: "spec.relay.exposure is LoadBalancer, ..." };
    assert.deepEqual(ending(observed({ refusal })), { phase: "Failed", ...refusal });
  });

  it("blames the caps when a stream waited for capacity until its connect timeout", () => {
    const end = ending(observed({ now: created + 11 * s, admitted: false, capacityMessage: "namespace full" }));
    assert.equal(end?.reason, "ConcurrentStreamLimit");
    assert.match(end!.message, /namespace full/);
  });

  it("expires at the maximum lifetime whatever the state", () => {
    const end = ending(observed({ now: created + 3600 * s, pod: readyPod, stream: stream(accepted()) }));
    assert.deepEqual([end?.phase, end?.reason], ["Expired", "LifetimeExpired"]);
  });

  it("expires when the hub's lastActivityAt is older than the idle timeout", () => {
    const status = { ...accepted(), lastActivityAt: "2030-01-01T00:00:05Z" };
    assert.equal(ending(observed({ now: created + 34 * s, stream: stream(status) })), undefined);
    assert.equal(ending(observed({ now: created + 35 * s, stream: stream(status) }))?.reason, "IdleTimeout");
  });

  it("fails when the hub says the device refused", () => {
    const status: DeviceStreamStatus = {
      conditions: [
        {
          type: "DeviceAccepted",
          status: "False",
          reason: "Refused",
          message: "not in allow-list",
          lastTransitionTime: "x",
        },
      ],
    };
    const end = ending(observed({ stream: stream(status) }));
    assert.equal(end?.reason, "DeviceRefused");
    assert.match(end!.message, /not in allow-list/);
  });

  it("ends with BytesPerDayExceeded when the usage poller says the cap was passed", () => {
    const end = ending(observed({ bytesPerDayExceeded: "moved 5 bytes, over 4" }));
    assert.deepEqual(end, { phase: "Expired", reason: "BytesPerDayExceeded", message: "moved 5 bytes, over 4" });
  });

  it("fails with DeviceDeleted when the Device of an accepted stream is gone, but a stream made first just waits", () => {
    const st = stream(accepted());
    const end = ending(observed({ stream: st, revoked: deviceRevocation(st, undefined) }));
    assert.equal(end?.phase, "Failed");
    assert.equal(end?.reason, "DeviceDeleted");
    assert.equal(ending(observed({ revoked: deviceRevocation(stream(), undefined) })), undefined);
  });

  it("stays ended once ended, keeping reason and end time", () => {
    const ended = desiredStatus(observed({ now: created + 10 * s }), ending(observed({ now: created + 10 * s })));
    const later = observed({ now: created + 100 * s, stream: stream(ended as DeviceStreamStatus) });
    const again = desiredStatus(later, ending(later));
    assert.equal(again.phase, "Failed");
    assert.equal(reasonOf(again), "ConnectTimeout");
    assert.equal(again.endedAt, ended.endedAt);
    assert.equal(again.relay, undefined);
    assert.ok(sameStatus(ended as DeviceStreamStatus, again), "nothing to write the second time");
  });

  it("keeps lastTransitionTime while a condition's status stays the same", () => {
    const first = desiredStatus(observed(), undefined);
    const later = observed({
      now: created + 5 * s,
      stream: stream(first as DeviceStreamStatus),
      pod: { metadata: { name: "st-relay" }, status: { phase: "Pending" } },
    });
    const second = desiredStatus(later, undefined);
    assert.equal(second.conditions![0]!.lastTransitionTime, first.conditions![0]!.lastTransitionTime);
    const third = desiredStatus(
      observed({ now: created + 6 * s, stream: stream(second as DeviceStreamStatus), pod: readyPod }),
      undefined,
    );
    assert.notEqual(third.conditions![1]!.lastTransitionTime, first.conditions![1]!.lastTransitionTime);
  });

  it("looks again at the next deadline", () => {
    assert.equal(nextCheckMs(observed({ now: created + 4 * s }), undefined), 6 * s + 50);
    assert.equal(nextCheckMs(observed({ now: created + 4 * s, stream: stream(accepted()) }), undefined), 3596 * s + 50);
  });

  it("reports the relay endpoint, node port and load balancer address", () => {
    const service = {
      metadata: { name: "st-relay" },
      spec: { ports: [{ name: "grpc", port: 8443, nodePort: 31000 }] },
      status: { loadBalancer: { ingress: [{ ip: "203.0.113.9" }] } },
    };
    const st = desiredStatus(observed({ service }), undefined);
    assert.deepEqual(st.relay, {
      serviceName: "st-relay",
      endpoint: "st-relay.ns.svc:8443",
      tlsServerName: "st-relay.ns.svc",
      credentialsSecret: "st-relay-0123456789",
      nodePort: 31000,
      externalEndpoint: "203.0.113.9:8443",
    });
  });

  it("publishes the gateway's address and the stream's gateway name when given, and the GatewayRoute condition", () => {
    const gateway = { endpoint: "gw.example.com:443", serverName: "st.ns.relay.example.com" };
    const st = desiredStatus(observed({ gateway, gatewayRoute: ["False", "RoutePending", "waiting"] }), undefined);
    assert.equal(st.relay?.externalEndpoint, "gw.example.com:443");
    assert.equal(st.relay?.tlsServerName, "st.ns.relay.example.com");
    assert.equal(st.relay?.endpoint, "st-relay.ns.svc:8443");
    const route = st.conditions?.find((c) => c.type === "GatewayRoute");
    assert.equal(route?.reason, "RoutePending");
    // A change of the route's condition alone is a change of status.
    const current = { ...st, conditions: st.conditions!.filter((c) => c.type !== "GatewayRoute") };
    assert.equal(sameStatus(current, st), false);
    assert.equal(sameStatus(st, st), true);
  });
});
