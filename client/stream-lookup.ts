// From a DeviceStream's name to a RelayClient and the source token, using only what the cluster
// says: status.relay (endpoint, TLS name, credentials Secret) and that Secret (source-token,
// ca.crt). Reading the Secret is what RBAC guards: whoever may `get` it may connect.
import { lookup } from "node:dns/promises";
import { conditionTypes, relayName } from "../api/constants.ts";
import { type DeviceStream, deviceStreamResource } from "../api/v1alpha1.ts";
import { core, type KubeClient, objectPath } from "../kube/client.ts";
import type { Pod, Secret } from "../kube/types.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import { RelayClient } from "../transport/relay-client.ts";
import { explainKubeError } from "./kube-errors.ts";

export interface StreamAccess {
  stream: DeviceStream;
  relay: RelayClient;
  /** The address dialled, and how it was chosen. */
  address: string;
  via: string;
  token: string;
}

export function readyCondition(ds: DeviceStream) {
  return ds.status?.conditions?.find((c) => c.type === "Ready");
}

export async function getStream(kube: KubeClient, namespace: string, name: string): Promise<DeviceStream> {
  try {
    return await kube.get<DeviceStream>(objectPath({ ...deviceStreamResource }, namespace, name));
  } catch (err) {
    throw explainKubeError(
      err,
      `get DeviceStream "${name}" in namespace "${namespace}"`,
      () =>
        new DeviceStreamsError(
          "DS_NO_SUCH_STREAM",
          `DeviceStream "${name}" does not exist in namespace "${namespace}"; see \`kubectl devicestream list -n ${namespace}\`, or open one with \`kubectl devicestream open DEVICE --service NAME\``,
        ),
    );
  }
}

/** Throws when the stream has ended: nothing can connect to it any more. */
export function checkNotEnded(ds: DeviceStream): void {
  const phase = ds.status?.phase;
  if (phase !== "Failed" && phase !== "Expired") return;
  const ready = readyCondition(ds);
  const code = phase === "Expired" ? "DS_STREAM_EXPIRED" : "DS_STREAM_FAILED";
  throw new DeviceStreamsError(
    code,
    `DeviceStream "${ds.metadata.name}" has ended (${phase}, ${ready?.reason ?? "no reason given"}: ${ready?.message ?? ""}); open a new stream`,
  );
}

/** Waits (polling, bounded) until the stream's relay is ready and its credentials are named. */
export async function waitForRelay(
  kube: KubeClient,
  namespace: string,
  name: string,
  timeoutMs: number,
  progress: (line: string) => void,
): Promise<DeviceStream> {
  const deadline = Date.now() + timeoutMs;
  let said = "";
  for (;;) {
    const ds = await getStream(kube, namespace, name);
    checkNotEnded(ds);
    const relayReady = ds.status?.conditions?.find((c) => c.type === conditionTypes.relayReady);
    if (relayReady?.status === "True" && ds.status?.relay?.credentialsSecret) return ds;
    const ready = readyCondition(ds);
    const now = ready ? `${ready.reason}: ${ready.message}` : "waiting for the operator to pick the stream up";
    if (Date.now() > deadline) {
      throw new DeviceStreamsError(
        "DS_STREAM_NOT_READY",
        `the relay of DeviceStream "${name}" is not ready after ${Math.round(timeoutMs / 1000)}s (${now}); check \`kubectl describe devicestream ${name} -n ${namespace}\``,
      );
    }
    if (now !== said) progress(`waiting for the relay: ${now}`);
    said = now;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Where to dial the relay. In order: an explicit address; the load balancer's; the in-cluster
 * name when this machine resolves cluster DNS; else the relay Pod's IP, which is what that
 * headless Service's DNS name resolves to, for machines routed into the Pod network.
 */
async function relayAddress(kube: KubeClient, ds: DeviceStream, explicit?: string): Promise<[string, string]> {
  const relay = ds.status!.relay!;
  if (explicit) return [explicit, "--relay-address"];
  if (relay.externalEndpoint) return [relay.externalEndpoint, "the load balancer (status.relay.externalEndpoint)"];
  const { host, port } = splitHostPort(relay.endpoint!);
  try {
    await lookup(host);
    return [relay.endpoint!, "cluster DNS"];
  } catch {
    // Not inside the cluster's DNS: try the Pod network.
  }
  const podName = relayName(ds.metadata.name!);
  let pod: Pod;
  try {
    pod = await kube.get<Pod>(objectPath(core.pods, ds.metadata.namespace!, podName));
  } catch (err) {
    const why = explainKubeError(err, `get Pod "${podName}"`);
    throw new DeviceStreamsError(
      "DS_RELAY_UNREACHABLE",
      `cannot reach the relay: ${host} does not resolve here and its Pod's IP is unknown (${(why as Error).message}); expose the relay (spec.relay.exposure: LoadBalancer, if the operator's --relay-exposures allows it), or pass --relay-address host:port`,
    );
  }
  if (!pod.status?.podIP) {
    throw new DeviceStreamsError("DS_RELAY_UNREACHABLE", `relay Pod ${podName} has no IP yet; try again in a moment`);
  }
  return [`${pod.status.podIP}:${port}`, `the relay Pod's IP (${host} does not resolve here)`];
}

export async function streamAccess(
  kube: KubeClient,
  ds: DeviceStream,
  o: { relayAddress?: string; keepalive?: { timeMs: number; timeoutMs: number } } = {},
): Promise<StreamAccess> {
  const ns = ds.metadata.namespace!;
  const secretName = ds.status!.relay!.credentialsSecret!;
  let secret: Secret;
  try {
    secret = await kube.get<Secret>(objectPath(core.secrets, ns, secretName));
  } catch (err) {
    throw explainKubeError(
      err,
      `read the stream's credentials, Secret "${secretName}"`,
      () =>
        new DeviceStreamsError(
          "DS_STREAM_NOT_READY",
          `the credentials Secret "${secretName}" of DeviceStream "${ds.metadata.name}" does not exist (yet); try again in a moment`,
        ),
    );
  }
  const value = (key: string) => {
    const v = secret.data?.[key];
    if (!v) throw new DeviceStreamsError("DS_STREAM_CREDENTIALS", `Secret "${secretName}" lacks ${key}`);
    return Buffer.from(v, "base64").toString("utf8");
  };
  const [address, via] = await relayAddress(kube, ds, o.relayAddress);
  const relay = new RelayClient({
    address,
    tls: { caPem: value("ca.crt") },
    keepalive: o.keepalive ?? { timeMs: 10_000, timeoutMs: 5_000 },
    serverName: ds.status!.relay!.tlsServerName,
  });
  return { stream: ds, relay, address, via, token: value("source-token").trim() };
}
