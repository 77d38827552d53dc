// The agent's hello, checked before any of it is used: its services become Device.status.services
// (the CRD allows 256 names, each a DNS-1123 label), so a hello the API server would refuse, or one
// sized to make every status write expensive, is refused here with a reason the agent can act on.
import { dns1123LabelError } from "../../kube/names.ts";
import type { AgentControl } from "../../transport/hub-service.ts";

type AgentHello = NonNullable<AgentControl["hello"]>;

/** As many as Device.status.services holds (crds/devicestreams.io_devices.yaml). */
export const maxAdvertisedServices = 256;

export type HelloCheck = { ok: true; agentVersion: string; services: string[] } | { ok: false; message: string };

export function checkHello(hello: AgentHello): HelloCheck {
  const services = hello.services ?? [];
  if (services.length > maxAdvertisedServices) {
    return {
      ok: false,
      message: `the agent's hello advertises ${services.length} services; at most ${maxAdvertisedServices} are allowed, so trim its allow-list`,
    };
  }
  for (const name of services) {
    const why = dns1123LabelError(name);
    if (why) {
      const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
      return {
        ok: false,
        message: `the agent's hello advertises service ${shown}, which is ${why}; rename it in the allow-list`,
      };
    }
  }
  return { ok: true, agentVersion: (hello.agentVersion ?? "").slice(0, 64), services: [...new Set(services)].sort() };
}
