// Applies a stream's TLSRoute (Gateway API mode) and reports the Gateway's answer as the stream's
// GatewayRoute condition. The route is deleted when the stream ends; the garbage collector
// deletes it with the stream (ownerReference).

import { annotations, relayName } from "../../api/constants.ts";
import type { Condition, DeviceStream } from "../../api/v1alpha1.ts";
import { isNotFound, objectPath } from "../../kube/client.ts";
import { controlledBy } from "../../kube/objects.ts";
import { certificateListsGatewayName } from "../gateway-name.ts";
import { buildTlsRoute, routeCondition, tlsRouteResource } from "../gateway-route.ts";
import type { ReconcileContext } from "./context.ts";

type RouteCondition = [Condition["status"], string, string];

export const routeWriteFailed = "RouteWriteFailed";
/** How soon a refused TLSRoute write is tried again. */
export const routeRetryMs = 10_000;

export async function ensureRoute(
  ctx: ReconcileContext,
  ds: DeviceStream,
  manager: string,
): Promise<RouteCondition | undefined> {
  const g = ctx.gatewayApi;
  // A route to a relay whose certificate lacks the name would only fail the client's name check.
  if (!g || !certificateListsGatewayName(ds, ctx.relay.gatewayDomain)) return undefined;
  if (!g.routes) {
    return [
      "False",
      "TLSRouteNotInstalled",
      "the Gateway API TLSRoute CRD is not installed; install it and restart the operator",
    ];
  }
  const ns = ds.metadata.namespace!;
  const want = buildTlsRoute(ds, ctx.relay, g.parent, g.version);
  const name = want.metadata.name!;
  const have = g.routes.get(ns, name);
  if (have && !controlledBy(have, ds)) {
    return ["False", "RouteNameConflict", `TLSRoute ${name} exists and belongs to something else`];
  }
  const hash = annotations.configHash;
  if (have?.metadata.annotations?.[hash] !== want.metadata.annotations?.[hash]) {
    try {
      await ctx.client.apply(objectPath(tlsRouteResource(g.version), ns, name), want, manager);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      ctx.log.warn("the API server refused the stream's TLSRoute", { stream: `${ns}/${ds.metadata.name}`, error: why });
      return ["False", routeWriteFailed, `applying TLSRoute ${name} failed: ${why.slice(0, 256)}`];
    }
  }
  return routeCondition(have, g.parent);
}

export async function deleteRoute(ctx: ReconcileContext, ds: DeviceStream): Promise<void> {
  const g = ctx.gatewayApi;
  const route = g?.routes?.get(ds.metadata.namespace!, relayName(ds.metadata.name!));
  if (!g || !route || !controlledBy(route, ds) || route.metadata.deletionTimestamp) return;
  try {
    await ctx.client.delete(objectPath(tlsRouteResource(g.version), route.metadata.namespace!, route.metadata.name!), {
      uid: route.metadata.uid,
    });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
