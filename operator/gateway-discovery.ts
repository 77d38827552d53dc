// Which TLSRoute version the API server serves, if any: Gateway API installs differ (v1 in the
// standard channel from v1.5, v1alpha2 in older experimental ones, none where no Gateway
// implementation is installed). Asked once at startup.

import { isNotFound, type KubeClient } from "../kube/client.ts";
import { gatewayGroup, tlsRouteVersions } from "./gateway-route.ts";

interface ResourceList {
  resources?: Array<{ name?: string }>;
}

export async function servedTlsRouteVersion(client: KubeClient): Promise<string | undefined> {
  for (const version of tlsRouteVersions) {
    try {
      const list = await client.get<ResourceList>(`/apis/${gatewayGroup}/${version}`);
      if (list.resources?.some((r) => r.name === "tlsroutes")) return version;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return undefined;
}
