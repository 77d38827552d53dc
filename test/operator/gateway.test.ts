// The operator's gateway side against a real kube-apiserver and garbage collector: the gateway
// endpoint and name in status once the relay certificate lists the name, and Gateway API mode's
// TLSRoute per stream (created, its status reflected, updated, deleted with the stream), including
// an API server without the TLSRoute CRD.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { annotations } from "../../api/constants.ts";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { core, objectPath } from "../../kube/client.ts";
import type { Secret } from "../../kube/types.ts";
import { type TLSRoute, tlsRouteResource } from "../../operator/gateway-route.ts";
import type { RunningOperator } from "../../operator/main.ts";
import { waitFor } from "../helpers/wait.ts";
import { OperatorEnv, streams } from "./env.ts";

const domain = "relay.example.com";
const gatewayFlags = (section: string) => [
  `--gateway-relay-domain=${domain}`,
  "--gateway-address=gw.example.com:443",
  `--gateway-api-parent=gateways/public/${section}`,
];
const routes = tlsRouteResource("v1");

describe("operator: gateway endpoint and TLSRoutes", function () {
  this.timeout(120_000);
  let env: OperatorEnv;
  let op: RunningOperator | undefined;

  before(async () => {
    env = await OperatorEnv.start();
  });
  after(async () => {
    await op?.stop();
    await env?.stop();
  });
  const restart = async (flags: string[]) => {
    await op?.stop();
    op = await env.startOperator(flags);
  };
  const cond = (ds: DeviceStream, type: string) => ds.status?.conditions?.find((c) => c.type === type);
  const streamWhere = (ns: string, name: string, what: string, ok: (ds: DeviceStream) => boolean) =>
    waitFor(`${ns}/${name}: ${what}`, async () => {
      const ds = await env.getStream(ns, name);
      return ok(ds) ? ds : undefined;
    });
  const route = (ns: string, name: string) => env.admin.get<TLSRoute>(objectPath(routes, ns, `${name}-relay`));
  const setRouteStatus = (ns: string, name: string, section: string, accepted: string, resolved: string) =>
    env.admin.request("PATCH", `${objectPath(routes, ns, `${name}-relay`)}/status`, {
      contentType: "application/merge-patch+json",
      body: {
        status: {
          parents: [
            {
              parentRef: {
                group: "gateway.networking.k8s.io",
                kind: "Gateway",
                namespace: "gateways",
                name: "public",
                sectionName: section,
              },
              controllerName: "example.com/gateway-controller",
              conditions: [
                {
                  type: "Accepted",
                  status: accepted,
                  reason: accepted === "True" ? "Accepted" : "NotAllowedByListeners",
                  message: "listener says so",
                  lastTransitionTime: "2026-01-01T00:00:00Z",
                  observedGeneration: 1,
                },
                {
                  type: "ResolvedRefs",
                  status: resolved,
                  reason: resolved === "True" ? "ResolvedRefs" : "BackendNotFound",
                  message: "no such Service",
                  lastTransitionTime: "2026-01-01T00:00:00Z",
                  observedGeneration: 1,
                },
              ],
            },
          ],
        },
      },
    });

  it("without the TLSRoute CRD: no route, a GatewayRoute condition saying why; an older stream keeps its in-cluster name", async () => {
    const ns = await env.namespace("gw-old");
    await env.createDevice(ns, "edge");
    // Made before the gateway domain was configured: its certificate lacks the gateway name.
    op = await env.startOperator();
    await env.createStream(ns, "before", { device: "edge", service: "ssh" });
    await streamWhere(ns, "before", "a relay in status", (ds) => !!ds.status?.relay?.credentialsSecret);
    await waitFor("the relay Pod", () => env.getPod(ns, "before-relay"));

    await restart(gatewayFlags("tls"));
    await env.createStream(ns, "after", { device: "edge", service: "ssh" });
    const after = await streamWhere(
      ns,
      "after",
      "GatewayRoute condition and the gateway endpoint",
      (ds) => !!cond(ds, "GatewayRoute") && !!ds.status?.relay?.externalEndpoint,
    );
    assert.equal(cond(after, "GatewayRoute")?.status, "False");
    assert.equal(cond(after, "GatewayRoute")?.reason, "TLSRouteNotInstalled");
    // The certificate lists the name, so the endpoint is published even without Gateway API.
    assert.equal(after.status?.relay?.externalEndpoint, "gw.example.com:443");
    assert.equal(after.status?.relay?.tlsServerName, `after.${ns}.${domain}`);

    const before = await env.getStream(ns, "before");
    assert.equal(before.metadata.annotations?.[annotations.gatewayServerName], undefined);
    assert.equal(before.status?.relay?.externalEndpoint, undefined);
    assert.equal(before.status?.relay?.tlsServerName, `before-relay.${ns}.svc`);
    assert.equal(cond(before, "GatewayRoute"), undefined);
  });

  it("publishes the gateway address and name of a stream whose certificate lists it, and makes its TLSRoute", async () => {
    await env.installGatewayApi();
    await restart(gatewayFlags("tls"));
    const ns = await env.namespace("gw-new");
    await env.createDevice(ns, "edge");
    const created = await env.createStream(ns, "web", { device: "edge", service: "ssh" });
    const name = `web.${ns}.${domain}`;
    const ds = await streamWhere(ns, "web", "the gateway endpoint", (d) => d.status?.relay?.tlsServerName === name);
    assert.equal(ds.metadata.annotations?.[annotations.gatewayServerName], name);
    assert.equal(ds.status?.relay?.externalEndpoint, "gw.example.com:443");
    assert.equal(ds.status?.relay?.endpoint, `web-relay.${ns}.svc:8443`);
    const secret = await env.admin.get<Secret>(objectPath(core.secrets, ns, ds.status!.relay!.credentialsSecret!));
    const cert = new X509Certificate(Buffer.from(secret.data!["tls.crt"]!, "base64"));
    assert.match(cert.subjectAltName ?? "", new RegExp(`DNS:${name.replace(/\./g, "\\.")}`));

    const r = await waitFor("the TLSRoute", () => route(ns, "web"));
    assert.deepEqual(r.metadata.ownerReferences, [
      {
        apiVersion: "devicestreams.io/v1alpha1",
        kind: "DeviceStream",
        name: "web",
        uid: created.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    assert.equal(r.metadata.labels?.["app.kubernetes.io/managed-by"], "devicestreams-operator");
    assert.equal(r.metadata.labels?.["app.kubernetes.io/instance"], "web");
    assert.deepEqual(r.spec?.hostnames, [name]);
    assert.deepEqual(r.spec?.parentRefs, [
      {
        group: "gateway.networking.k8s.io",
        kind: "Gateway",
        namespace: "gateways",
        name: "public",
        sectionName: "tls",
      },
    ]);
    assert.deepEqual((r.spec!.rules as Array<{ backendRefs: unknown }>)[0]!.backendRefs, [
      { group: "", kind: "Service", name: "web-relay", port: 8443, weight: 1 },
    ]);
    const pending = await streamWhere(
      ns,
      "web",
      "GatewayRoute pending",
      (d) => cond(d, "GatewayRoute")?.reason === "RoutePending",
    );
    assert.equal(cond(pending, "GatewayRoute")?.status, "Unknown");

    // As the Gateway's controller: accepted but the backend is not resolved, then both fine.
    await setRouteStatus(ns, "web", "tls", "True", "False");
    const unresolved = await streamWhere(
      ns,
      "web",
      "RouteRefsNotResolved",
      (d) => cond(d, "GatewayRoute")?.reason === "RouteRefsNotResolved",
    );
    assert.equal(cond(unresolved, "GatewayRoute")?.status, "False");
    assert.match(
      cond(unresolved, "GatewayRoute")!.message,
      /Gateway gateways\/public \(listener tls\): ResolvedRefs is False \(BackendNotFound\): no such Service/,
    );
    await setRouteStatus(ns, "web", "tls", "True", "True");
    const accepted = await streamWhere(ns, "web", "RouteAccepted", (d) => cond(d, "GatewayRoute")?.status === "True");
    assert.equal(cond(accepted, "GatewayRoute")?.reason, "RouteAccepted");

    // Another listener: the route follows the configuration, and the old listener's answer no longer counts.
    await restart(gatewayFlags("tls-b"));
    await waitFor(
      "the route on listener tls-b",
      async () =>
        ((await route(ns, "web")).spec!.parentRefs as Array<{ sectionName?: string }>)[0]?.sectionName === "tls-b",
    );
    await streamWhere(
      ns,
      "web",
      "GatewayRoute pending again",
      (d) => cond(d, "GatewayRoute")?.reason === "RoutePending",
    );

    // A route deleted by hand comes back.
    await env.admin.delete(objectPath(routes, ns, "web-relay"));
    await waitFor("the route to be made again", async () => {
      const again = await route(ns, "web").catch(() => undefined);
      return again && again.metadata.uid !== r.metadata.uid;
    });

    // Deleting the stream deletes its route (garbage collector, through the ownerReference).
    await env.admin.delete(objectPath(streams, ns, "web"));
    await waitFor("the stream to go", () => env.gone(streams, ns, "web"));
    await waitFor("the TLSRoute to be collected", () => env.gone(routes, ns, "web-relay"), 60_000);
  });
});
