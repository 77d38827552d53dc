// From a DeviceStream's name to a RelayClient and a credential, using only what the cluster says:
// status.relay (endpoint, TLS name, CA bundle). The credential is the user's own Kubernetes token,
// which the relay has the operator review (RBAC verb `connect` on the stream); a kubeconfig with
// no token (client certificates) falls back to the Secret's source token, if the stream allows it.
import { lookup } from "node:dns/promises";
import type { RequestOptions } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import { conditionTypes, relayName } from "../api/constants.ts";
import { type DeviceStream, deviceStreamResource } from "../api/v1alpha1.ts";
import { core, type KubeClient, objectPath } from "../kube/client.ts";
import { controlledBy } from "../kube/objects.ts";
import type { Pod, Secret } from "../kube/types.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import type { Logger } from "../runtime/log.ts";
import { type ProxySettings, preflightProxy } from "../transport/proxy.ts";
import { RelayClient, type SourceCredential } from "../transport/relay-client.ts";
import { forwardViaApiServer } from "./apiserver-forward.ts";
import { explainKubeError } from "./kube-errors.ts";

export interface StreamAccess {
  stream: DeviceStream;
  relay: RelayClient;
  /** The address dialled, and how it was chosen. */
  address: string;
  via: string;
  /** The user's Kubernetes token, or (kubeconfig without one) the stream's source token. */
  credential: SourceCredential;
  usesSourceToken: boolean;
  /** Closes the relay client and, when the API server carries it, the port-forward. */
  close(): Promise<void>;
}

/**
 * How to reach the relay: `auto` takes the first of the stream's external endpoint (a gateway or
 * load balancer), its in-cluster name when cluster DNS resolves here, and the API server's
 * port-forward; `apiserver` and `pod-ip` force one way.
 */
export const relayRoutes = ["auto", "apiserver", "pod-ip"] as const;
export type RelayRoute = (typeof relayRoutes)[number];

export interface AccessOptions {
  relayAddress?: string;
  via?: RelayRoute;
  /** For the port-forward, and whose credentials to present: the user's own kubeconfig. */
  kubeConfig?: KubeConfig;
  /** Present this kubeconfig's credentials instead of kubeConfig's (tests that route by Pod IP). */
  user?: KubeConfig;
  log?: Logger;
  keepalive?: { timeMs: number; timeoutMs: number };
  /** The HTTP proxy for a relay dialled directly (not for the API server's port-forward, which is local). */
  proxy?: ProxySettings;
}

interface Route {
  address: string;
  via: string;
  close?: () => Promise<void>;
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

/** The relay Pod's IP: what the headless Service resolves to, for machines routed into the Pod network. */
async function podIpRoute(kube: KubeClient, ds: DeviceStream, port: number): Promise<Route> {
  const podName = relayName(ds.metadata.name!);
  let pod: Pod;
  try {
    pod = await kube.get<Pod>(objectPath(core.pods, ds.metadata.namespace!, podName));
  } catch (err) {
    const why = explainKubeError(err, `get Pod "${podName}"`);
    throw new DeviceStreamsError(
      "DS_RELAY_UNREACHABLE",
      `cannot reach the relay: its Pod's IP is unknown (${(why as Error).message}); use --via apiserver, or pass --relay-address host:port`,
    );
  }
  // A Pod of that name the stream does not control could be anyone's; the relay's certificate
  // check would catch it too, but the source token should not go there at all.
  if (!controlledBy(pod, ds)) {
    throw new DeviceStreamsError(
      "DS_RELAY_UNREACHABLE",
      `Pod ${podName} is not DeviceStream ${ds.metadata.name}'s relay (the stream does not control it); ask your cluster administrator who made it`,
    );
  }
  if (!pod.status?.podIP) {
    throw new DeviceStreamsError("DS_RELAY_UNREACHABLE", `relay Pod ${podName} has no IP yet; try again in a moment`);
  }
  return { address: `${pod.status.podIP}:${port}`, via: "the relay Pod's IP (--via pod-ip)" };
}

async function apiServerRoute(ds: DeviceStream, port: number, o: AccessOptions): Promise<Route> {
  if (!o.kubeConfig || !o.log) throw new Error("--via apiserver needs the kubeconfig and a logger");
  const forward = await forwardViaApiServer(
    o.kubeConfig,
    ds.metadata.namespace!,
    relayName(ds.metadata.name!),
    port,
    o.log,
  );
  return { address: forward.address, via: "the API server's port-forward to the relay Pod", close: forward.close };
}

async function relayRoute(kube: KubeClient, ds: DeviceStream, o: AccessOptions): Promise<Route> {
  const relay = ds.status!.relay!;
  if (o.relayAddress) return { address: o.relayAddress, via: "--relay-address" };
  const { host, port } = splitHostPort(relay.endpoint!);
  if (o.via === "pod-ip") return podIpRoute(kube, ds, port);
  if (o.via === "apiserver") return apiServerRoute(ds, port, o);
  if (relay.externalEndpoint) {
    return { address: relay.externalEndpoint, via: "the stream's external endpoint (status.relay.externalEndpoint)" };
  }
  try {
    await lookup(host);
    return { address: relay.endpoint!, via: "cluster DNS" };
  } catch {
    // Not inside the cluster's DNS: through the API server, which every kubeconfig reaches.
  }
  if (!o.kubeConfig) return podIpRoute(kube, ds, port);
  return apiServerRoute(ds, port, o);
}

/**
 * The user's own bearer token as the kubeconfig yields it (a token, a token file, an exec or OIDC
 * plugin: @kubernetes/client-node runs them); undefined for client certificates and basic auth.
 */
export async function kubernetesToken(kc: KubeConfig): Promise<string | undefined> {
  const opts: RequestOptions = {};
  try {
    await kc.applyToHTTPSOptions(opts);
  } catch (err) {
    throw new DeviceStreamsError(
      "DS_KUBECONFIG",
      `cannot get credentials from the kubeconfig (${(err as Error).message}); check that \`kubectl get devicestreams\` works`,
      { cause: err },
    );
  }
  const header = (opts.headers as Record<string, unknown> | undefined)?.Authorization;
  return typeof header === "string" && header.startsWith("Bearer ") ? header.slice(7) : undefined;
}

/** The stream's source token and CA from its Secret: for kubeconfigs without a bearer token. */
async function readCredentialsSecret(kube: KubeClient, ds: DeviceStream): Promise<{ ca: string; token: string }> {
  const ns = ds.metadata.namespace!;
  const secretName = ds.status!.relay!.credentialsSecret!;
  let secret: Secret;
  try {
    secret = await kube.get<Secret>(objectPath(core.secrets, ns, secretName));
  } catch (err) {
    throw explainKubeError(
      err,
      `read the stream's source token, Secret "${secretName}" (your kubeconfig has no bearer token to connect with, so the plugin falls back to the source token)`,
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
  return { ca: value("ca.crt"), token: value("source-token").trim() };
}

export async function streamAccess(kube: KubeClient, ds: DeviceStream, o: AccessOptions = {}): Promise<StreamAccess> {
  // The user's own token when the kubeconfig yields one: the relay has the operator check that the
  // user may `connect` to this stream. Without one (client certificates), the Secret's source token.
  const kc = o.user ?? o.kubeConfig;
  const userToken = kc ? await kubernetesToken(kc) : undefined;
  let credential: SourceCredential;
  let ca = ds.status?.relay?.caBundle;
  if (kc && userToken !== undefined) {
    credential = { kubernetesToken: async () => (await kubernetesToken(kc)) ?? userToken };
  } else {
    const secret = await readCredentialsSecret(kube, ds);
    credential = secret.token;
    ca ??= secret.ca;
  }
  if (!ca) {
    throw new DeviceStreamsError(
      "DS_STREAM_CREDENTIALS",
      `DeviceStream "${ds.metadata.name}" publishes no relay CA (status.relay.caBundle); its operator may predate it: upgrade the operator`,
    );
  }
  const route = await relayRoute(kube, ds, o);
  const throughApiServer = route.close !== undefined;
  if (o.proxy && !throughApiServer && o.log) await preflightProxy(o.proxy, route.address, o.log);
  const relay = new RelayClient({
    proxy: throughApiServer ? undefined : o.proxy,
    address: route.address,
    tls: { caPem: ca },
    keepalive: o.keepalive ?? { timeMs: 10_000, timeoutMs: 5_000 },
    serverName: ds.status!.relay!.tlsServerName,
  });
  return {
    stream: ds,
    relay,
    address: route.address,
    via: route.via,
    credential,
    usesSourceToken: userToken === undefined,
    close: async () => {
      relay.close();
      await route.close?.();
    },
  };
}
