import assert from "node:assert/strict";
import type { DeviceStream } from "../api/v1alpha1.ts";
import { certificateListsGatewayName, publishedGateway } from "./gateway-name.ts";
import { buildTlsRoute, routeCondition, type TLSRoute } from "./gateway-route.ts";
import type { RelaySettings } from "./relay-objects.ts";

const stream = (annotations: Record<string, string> = {}, exposure = "ClusterIP"): DeviceStream =>
  ({
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: { name: "web", namespace: "team-a", uid: "u-1", annotations },
    spec: { device: "edge", service: "ssh", relay: { exposure } },
  }) as unknown as DeviceStream;
const recorded = { "devicestreams.io/gateway-server-name": "web.team-a.relay.example.com" };
const settings = { gatewayDomain: "relay.example.com", gatewayAddress: "gw.example.com:443", version: "1.0.0" };
const parent = { namespace: "gateways", name: "public", sectionName: "tls" };

describe("gateway name and TLSRoute", () => {
  it("publishes the gateway only for ClusterIP streams whose certificate is recorded to list the current name", () => {
    assert.deepEqual(publishedGateway(stream(recorded), settings), {
      endpoint: "gw.example.com:443",
      serverName: "web.team-a.relay.example.com",
    });
    assert.equal(publishedGateway(stream(), settings), undefined, "certificate from before the domain");
    assert.equal(publishedGateway(stream(recorded), { ...settings, gatewayDomain: "other.example.com" }), undefined);
    assert.equal(publishedGateway(stream(recorded), { gatewayDomain: "relay.example.com" }), undefined, "no address");
    assert.equal(publishedGateway(stream(recorded, "LoadBalancer"), settings), undefined);
    assert.equal(certificateListsGatewayName(stream(recorded), undefined), false);
  });

  it("builds a passthrough route from the stream's gateway name to its relay Service", () => {
    const r = buildTlsRoute(stream(recorded), settings as unknown as RelaySettings, parent, "v1alpha2");
    assert.equal(r.apiVersion, "gateway.networking.k8s.io/v1alpha2");
    assert.equal(r.metadata.name, "web-relay");
    assert.deepEqual(r.spec?.hostnames, ["web.team-a.relay.example.com"]);
    assert.equal(r.metadata.ownerReferences?.[0]?.uid, "u-1");
    const other = buildTlsRoute(
      stream(recorded),
      settings as unknown as RelaySettings,
      { ...parent, sectionName: "b" },
      "v1",
    );
    assert.notEqual(
      r.metadata.annotations?.["devicestreams.io/config-hash"],
      other.metadata.annotations?.["devicestreams.io/config-hash"],
    );
  });

  it("reads the Gateway's answer for its own parent only, and keeps the controller's message short", () => {
    const route = (parents: unknown[]): TLSRoute => ({
      metadata: { name: "web-relay", namespace: "team-a" },
      status: { parents } as TLSRoute["status"],
    });
    const ref = { name: "public", namespace: "gateways", sectionName: "tls" };
    assert.equal(routeCondition(undefined, parent)[1], "RouteCreating");
    assert.equal(routeCondition(route([]), parent)[1], "RoutePending");
    const otherListener = [
      { parentRef: { ...ref, sectionName: "x" }, conditions: [{ type: "Accepted", status: "True" }] },
    ];
    assert.equal(routeCondition(route(otherListener), parent)[1], "RoutePending");
    const refused = [
      {
        parentRef: ref,
        conditions: [{ type: "Accepted", status: "False", reason: "NotAllowedByListeners", message: "x".repeat(5000) }],
      },
    ];
    const [status, reason, message] = routeCondition(route(refused), parent);
    assert.equal(status, "False");
    assert.equal(reason, "RouteNotAccepted");
    assert.ok(message.length < 400, "bounded message");
    const ok = [
      {
        parentRef: ref,
        conditions: [
          { type: "Accepted", status: "True" },
          { type: "ResolvedRefs", status: "True" },
        ],
      },
    ];
    assert.deepEqual(routeCondition(route(ok), parent).slice(0, 2), ["True", "RouteAccepted"]);
  });
});
