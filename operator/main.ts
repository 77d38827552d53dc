// `devicestreams operator`: builds the components and hands them to the manager (manager.ts).
// Every replica runs the caches (so a new leader starts warm), /metrics and the health endpoints,
// and the hub; only the leader runs the DeviceStream reconciler, the usage poller and the Device
// reconciler.

import { KubeConfig } from "@kubernetes/client-node";
import { fieldManager } from "../api/constants.ts";
import { collectionPath, KubeClient } from "../kube/client.ts";
import { createRegistry, type EndpointsServer, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger, type Logger } from "../runtime/log.ts";
import { certificateValidity } from "../runtime/pki.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { version } from "../runtime/version.ts";
import { OperatorCA } from "./ca.ts";
import { Caches } from "./caches.ts";
import { Capacity } from "./capacity.ts";
import { EventRecorder } from "./events.ts";
import { servedTlsRouteVersion } from "./gateway-discovery.ts";
import { tlsRouteResource } from "./gateway-route.ts";
import { HubComponent } from "./hub/component.ts";
import { HubReports } from "./hub/reports.ts";
import { hubTokenKey } from "./hub/token-key.ts";
import { LeaderElector } from "./leader-election.ts";
import { type Component, Manager } from "./manager.ts";
import { type OperatorMetrics, operatorMetrics } from "./metrics.ts";
import { type OperatorOptions, parseOperatorOptions, relayAccessReviewAddress } from "./options.ts";
import type { ReconcileContext } from "./reconcile/context.ts";
import { deviceController, streamController } from "./reconcile/controllers.ts";
import { RelayFailures } from "./reconcile/relay-failure.ts";
import { WrittenStatus } from "./reconcile/written-status.ts";
import { streamMetrics } from "./stream-metrics.ts";
import { UsagePoller } from "./usage/poller.ts";

export interface RunningOperator {
  identity: string;
  metricsPort: number;
  /** The hub's bound port once it serves (the CA must be loaded first); undefined when disabled. */
  hubPort(): number | undefined;
  isLeader(): boolean;
  /** Graceful: stop reconciling, release the lease, stop watching. */
  stop(): Promise<void>;
}

export interface OperatorDeps {
  /** Overrides --kubeconfig (tests pass the harness's, or an impersonating one). */
  kubeConfig?: KubeConfig;
  log?: Logger;
  /** A leader-only component failed to start (see Manager); by default only logged. */
  onLeaderFailure?: (err: unknown) => void;
}

function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault(); // $KUBECONFIG, ~/.kube/config, then the in-cluster service account
  return kc;
}

/** First among the leader-only components, so the gauge turns 1 as soon as the lease is won. */
const leaderGauge = (metrics: OperatorMetrics): Component => ({
  name: "leader gauge",
  leaderOnly: true,
  start: () => metrics.leader.set(1),
  stop: () => metrics.leader.set(0),
});

export async function startOperator(options: OperatorOptions, deps: OperatorDeps = {}): Promise<RunningOperator> {
  const log = deps.log ?? createLogger("operator");
  const client = new KubeClient(deps.kubeConfig ?? loadKubeConfig(options.kubeconfig));
  const registry = createRegistry("operator");
  const metrics = operatorMetrics(registry, () => {
    const counts = new Map<string, number>();
    for (const s of caches.streams.list())
      counts.set(s.status?.phase ?? "", (counts.get(s.status?.phase ?? "") ?? 0) + 1);
    return counts;
  });
  const parent = options.gatewayApiParent;
  const routeVersion = parent ? await servedTlsRouteVersion(client) : undefined;
  if (parent && !routeVersion) {
    // Streams say so too, in their GatewayRoute condition; the CRD is looked for only at startup.
    log.warn(
      "the API server serves no TLSRoute: no routes are made; install the Gateway API CRDs and restart the operator",
      {
        gatewayApiParent: `${parent.namespace}/${parent.name}`,
        group: "gateway.networking.k8s.io",
      },
    );
  } else if (parent) {
    log.info("making a TLSRoute per stream", {
      gatewayApiParent: `${parent.namespace}/${parent.name}`,
      version: routeVersion,
    });
  }
  const caches = new Caches(
    client,
    metrics,
    log,
    routeVersion ? collectionPath(tlsRouteResource(routeVersion)) : undefined,
  );
  const events = new EventRecorder(client, options.identity, log, (type, reason) =>
    metrics.events.inc({ type, reason }),
  );
  const ca = new OperatorCA(client, options.namespace, options.caSecret, fieldManager, log);
  const settings = { workers: options.workers, resyncPeriodMs: options.resyncPeriodMs, metrics, log };
  const { streams, devices, pods, services } = caches;
  const ctx: ReconcileContext = {
    client,
    streams,
    devices,
    pods,
    services,
    capacity: new Capacity(options.maxStreams, options.maxStreamsPerNamespace),
    events,
    relay: {
      image: options.relayImage,
      imagePullPolicy: options.relayImagePullPolicy,
      clusterDomain: options.clusterDomain,
      bindDevices: options.hubListen !== "",
      // Read when a relay Pod is built: a hub on port 0 (tests) knows its port only once it serves.
      get accessReviewAddress() {
        return relayAccessReviewAddress(options, hub?.port);
      },
      ...(options.gatewayRelayDomain ? { gatewayDomain: options.gatewayRelayDomain } : {}),
      ...(options.gatewayAddress ? { gatewayAddress: options.gatewayAddress } : {}),
      version,
      requests: options.relayRequests,
      limits: options.relayLimits,
      allowedExposures: options.relayExposures,
      ...(options.relayNetworkPolicy
        ? {
            networkPolicy: {
              operatorNamespace: options.namespace,
              metricsNamespaces: options.relayMetricsNamespaces,
              hubPort: Number(/:(\d+)$/.exec(options.hubListen)?.[1]) || undefined,
            },
          }
        : {}),
      max: options.relayMax,
    },
    ...(parent ? { gatewayApi: { parent, version: routeVersion ?? "", routes: caches.tlsRoutes } } : {}),
    ca: () => ca.get(),
    expectedPods: new Map(),
    endings: new Map(),
    writtenStatus: new WrittenStatus(),
    finalized: new Map(),
    relayFailures: new RelayFailures(),
    onRelayWriteError: (kind, reason) => metrics.relayWriteErrors.inc({ kind, reason }),
    enqueue: (key, afterMs) => streamReconciler.enqueue(key, afterMs),
    now: Date.now,
    log,
    streamTtlAfterFinishedMs: options.streamTtlAfterFinishedMs,
  };
  const streamReconciler = streamController(ctx, caches, ca, settings);
  const usage = new UsagePoller({
    client,
    streams,
    pods,
    registry,
    log,
    enqueue: (key) => streamReconciler.enqueue(key),
    intervalMs: options.usagePollIntervalMs,
  });
  ctx.usage = usage;

  let endpoints: EndpointsServer | undefined;
  const manager = new Manager({
    log,
    elector: options.leaderElect
      ? (lead, unlead) =>
          new LeaderElector({
            client,
            namespace: options.namespace,
            name: options.leaseName,
            identity: options.identity,
            leaseDurationMs: options.leaseDurationMs,
            renewDeadlineMs: options.renewDeadlineMs,
            retryPeriodMs: options.retryPeriodMs,
            fieldManager,
            log,
            onStartedLeading: lead,
            onStoppedLeading: unlead,
          })
      : undefined,
    onLeaderFailure: deps.onLeaderFailure,
  });
  manager.add(caches, {
    name: "metrics and health endpoints",
    start: async () => {
      endpoints = await serveEndpoints(options.metricsListen, registry, () => caches.readiness());
    },
    stop: () => endpoints?.close(),
  });
  // The hub has its own client and sockets: agents' load must not starve reconciles.
  const hubClient = new KubeClient(client.kubeConfig, { maxSockets: 16, userAgent: "devicestreams-hub" });
  const hubEvents = new EventRecorder(hubClient, options.identity, log, (type, reason) =>
    metrics.events.inc({ type, reason }),
  );
  const hub = options.hubListen
    ? new HubComponent(
        {
          listen: options.hubListen,
          dnsNames: options.hubDnsNames,
          ipAddresses: options.hubIpAddresses,
          certValidityMs: options.deviceCertValidityMs,
          enrollRateLimit: options.hubEnrollRateLimit,
          limits: options.hubConnectionLimits,
        },
        { client: hubClient, devices, streams, pods, events: hubEvents, replica: options.identity, registry, log },
        ca,
      )
    : undefined;
  if (hub) manager.add(hub);
  streamMetrics(registry, {
    streams: () => caches.streams.list(),
    device: (ns, name) => caches.devices.get(ns, name),
    isLeader: () => manager.isLeader,
    certificates: () => {
      const out: Array<{ certificate: string; notAfter: Date }> = [];
      const caPem = ca.current()?.certPem;
      if (caPem) out.push({ certificate: "ca", notAfter: certificateValidity(caPem).notAfter });
      if (hub?.servingNotAfter) out.push({ certificate: "hub_serving", notAfter: hub.servingNotAfter });
      return out;
    },
  });
  manager.add(leaderGauge(metrics), streamReconciler, usage);
  if (hub) {
    const deviceCtx = {
      client,
      devices,
      reports: new HubReports(client, events, log),
      tokenKey: () => hubTokenKey(ca.get()),
      tokenTtlMs: options.enrollmentTokenTtlMs,
      tokenNamespace: options.namespace,
      events,
      now: Date.now,
    };
    manager.add(deviceController(deviceCtx, caches, ca, settings));
  }

  try {
    await manager.start();
  } catch (err) {
    client.close();
    hubClient.close();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    identity: options.identity,
    metricsPort: endpoints!.port,
    hubPort: () => hub?.port,
    isLeader: () => manager.isLeader,
    stop: () =>
      (stopped ??= (async () => {
        await manager.stop();
        client.close();
        hubClient.close();
        log.info("stopped");
      })()),
  };
}

/** `devicestreams operator [flags]`: runs until SIGTERM or SIGINT, then shuts down gracefully. */
export async function runOperator(argv: string[]): Promise<RunningOperator | undefined> {
  const parsed = parseOperatorOptions(argv);
  if (!parsed) return undefined;
  const log = createLogger("operator");
  log.info("starting", { version, ...parsed.printable });
  let running: RunningOperator | undefined;
  const operator = await startOperator(parsed.options, {
    log,
    // As controller-runtime's manager: exit (releasing the lease), and let the Deployment start a fresh replica.
    onLeaderFailure: () => void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(1)),
  });
  running = operator;
  log.info("serving /metrics, /healthz and /readyz", { port: operator.metricsPort });
  // The first signal stops gracefully (the lease is released after the last reconcile), a second at once.
  onShutdownSignals(
    log,
    () => operator.stop(),
    async () => {},
  );
  return operator;
}
