// Starts `devicestreams gateway` as a real process on loopback, as the data-plane tests and the
// benchmark use it.
import { appendFileSync } from "node:fs";
import { core, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Pod } from "../../kube/types.ts";
import { ComponentProcess } from "./component-process.ts";
import { waitFor } from "./wait.ts";

export interface Gateway {
  process: ComponentProcess;
  port: number;
  metricsPort: number;
  address: string;
}

export async function startGateway(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Gateway> {
  const process = new ComponentProcess(
    "gateway",
    ["gateway", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", ...args],
    env,
  );
  try {
    const m = await process.waitFor(/ready port=(\d+) metricsPort=(\d+)/);
    return { process, port: Number(m[1]), metricsPort: Number(m[2]), address: `127.0.0.1:${m[1]}` };
  } catch (err) {
    await process.stop();
    throw err;
  }
}

/**
 * The route the gateway's relay rule makes in a cluster (the stream's name → its Service), for
 * the kubelet stand-in, whose relay Pods have loopback addresses and no Service: waits for the
 * relay Pod's address, then adds `<name>.<namespace>.<domain>=<pod IP>:8443` to `routesFile`.
 */
export async function routeRelayPod(
  admin: KubeClient,
  o: { namespace: string; name: string; domain: string; routesFile: string },
): Promise<void> {
  const pod = await waitFor(
    "the relay Pod's address",
    async () => {
      const p = await admin.get<Pod>(objectPath(core.pods, o.namespace, `${o.name}-relay`)).catch(() => undefined);
      return p?.status?.podIP ? p : undefined;
    },
    60_000,
  );
  appendFileSync(o.routesFile, `${o.name}.${o.namespace}.${o.domain}=${pod.status!.podIP}:8443\n`);
}
