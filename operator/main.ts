// `devicestreams operator`: caches start at once on every replica (so a new leader is warm);
// only the leader loads the CA, seeds the caps and runs the reconcile workers.

import { setTimeout as sleep } from "node:timers/promises";
import { KubeConfig } from "@kubernetes/client-node";
import { fieldManager, managedSelector, relayName } from "../api/constants.ts";
import { isTerminal } from "../api/devicestream.ts";
import { type Device, type DeviceStream, deviceResource, deviceStreamResource } from "../api/v1alpha1.ts";
import { collectionPath, core, KubeClient } from "../kube/client.ts";
import { Informer } from "../kube/informer.ts";
import { type KubeObject, keyOf, type Pod, type Service } from "../kube/types.ts";
import { Backoff } from "../runtime/backoff.ts";
import { describeError } from "../runtime/errors.ts";
import { createRegistry, type EndpointsServer, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger, type Logger } from "../runtime/log.ts";
import type { KeyPairPem } from "../runtime/pki.ts";
import { version } from "../runtime/version.ts";
import { loadOrCreateCA } from "./ca.ts";
import { Capacity } from "./capacity.ts";
import { Controller } from "./controller.ts";
import { EventRecorder } from "./events.ts";
import { enrollmentExpiresAnnotation, ensureEnrollmentToken } from "./hub/enrollment.ts";
import { HubReports } from "./hub/reports.ts";
import { Hub } from "./hub/server.ts";
import { holderOf, staleDevices } from "./hub/stale-devices.ts";
import { hubTokenKey } from "./hub/token-key.ts";
import { LeaderElector } from "./leader-election.ts";
import { operatorMetrics } from "./metrics.ts";
import { type OperatorOptions, parseOperatorOptions } from "./options.ts";
import type { ReconcileContext, StreamHooks } from "./reconcile/context.ts";
import { reconcileStream } from "./reconcile/stream.ts";
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
  hooks?: StreamHooks;
}

function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault(); // $KUBECONFIG, ~/.kube/config, then the in-cluster service account
  return kc;
}

/** The DeviceStream that controls `obj`, as a queue key. */
function ownerKey(obj: KubeObject): string | undefined {
  const ref = obj.metadata.ownerReferences?.find((r) => r.controller && r.kind === deviceStreamResource.kind);
  return ref ? `${obj.metadata.namespace}/${ref.name}` : undefined;
}

export async function startOperator(options: OperatorOptions, deps: OperatorDeps = {}): Promise<RunningOperator> {
  const log = deps.log ?? createLogger("operator");
  const client = new KubeClient(deps.kubeConfig ?? loadKubeConfig(options.kubeconfig));
  const registry = createRegistry("operator");
  const metrics = operatorMetrics(registry, () => {
    const counts = new Map<string, number>();
    for (const s of streams.list()) counts.set(s.status?.phase ?? "", (counts.get(s.status?.phase ?? "") ?? 0) + 1);
    return counts;
  });
  const informer = <T extends KubeObject>(name: string, path: string, labelSelector?: string, notFoundHint?: string) =>
    new Informer<T>({
      name,
      client,
      path,
      labelSelector,
      log,
      notFoundHint,
      onRestart: (cause) => metrics.watchRestarts.inc({ resource: name, cause }),
      onRelist: () => metrics.relists.inc({ resource: name }),
    });
  const crdMissing = "the devicestreams.io CRDs are not installed: kubectl apply -f crds/";
  const streams = informer<DeviceStream>(
    "devicestreams",
    collectionPath({ ...deviceStreamResource }),
    undefined,
    crdMissing,
  );
  const devices = informer<Device>("devices", collectionPath({ ...deviceResource }), undefined, crdMissing);
  const pods = informer<Pod>("pods", collectionPath(core.pods), managedSelector);
  const services = informer<Service>("services", collectionPath(core.services), managedSelector);
  const informers: Array<Pick<Informer<KubeObject>, "name" | "synced" | "start" | "stop" | "waitForSync">> = [
    streams,
    devices,
    pods,
    services,
  ];

  const events = new EventRecorder(client, options.identity, log, (type, reason) =>
    metrics.events.inc({ type, reason }),
  );
  const capacity = new Capacity(options.maxStreams, options.maxStreamsPerNamespace);
  let ca: KeyPairPem | undefined;
  const ctx: ReconcileContext = {
    client,
    streams,
    devices,
    pods,
    services,
    capacity,
    events,
    relay: {
      image: options.relayImage,
      imagePullPolicy: options.relayImagePullPolicy,
      clusterDomain: options.clusterDomain,
      version,
      requests: options.relayRequests,
      limits: options.relayLimits,
    },
    ca: () => {
      if (!ca) throw new Error("the relay CA is not loaded yet");
      return ca;
    },
    expectedPods: new Map(),
    endings: new Map(),
    enqueue: (key, afterMs) => controller.enqueue(key, afterMs),
    now: Date.now,
    log,
    hooks: deps.hooks ?? {},
  };
  const controller = new Controller("devicestream", (key) => reconcileStream(ctx, key), options.workers, metrics, log);
  const usage = new UsagePoller({
    client,
    streams,
    pods,
    registry,
    log,
    enqueue: (key) => controller.enqueue(key),
    intervalMs: options.usagePollIntervalMs,
  });
  ctx.usage = usage;

  streams.on((_event, obj) => controller.enqueue(keyOf(obj)));
  const enrolling = new Set<string>();
  const ensureToken = (device: Device) => {
    const key = keyOf(device);
    if (!leading || !ca || !options.hubListen || enrolling.has(key)) return;
    if (device.spec?.identity?.publicKeySHA256) return;
    const expires = Date.parse(device.metadata.annotations?.[enrollmentExpiresAnnotation] ?? "");
    if (Number.isFinite(expires) && expires - Date.now() > Math.min(options.enrollmentTokenTtlMs / 10, 60_000)) return;
    enrolling.add(key);
    ensureEnrollmentToken(client, device, hubTokenKey(ca), options.enrollmentTokenTtlMs, Date.now(), fieldManager)
      .catch((err: unknown) => log.warn("cannot write the enrolment token", { device: key, error: describeError(err) }))
      .finally(() => enrolling.delete(key));
  };
  devices.on((event, device) => {
    if (event !== "delete") ensureToken(device);
    for (const s of streams.list(device.metadata.namespace)) {
      if (s.spec.device === device.metadata.name) controller.enqueue(keyOf(s));
    }
  });
  pods.on((event, pod) => {
    const key = ownerKey(pod);
    if (!key) return;
    if (event === "add") ctx.expectedPods.delete(key);
    controller.enqueue(key);
  });
  services.on((_event, service) => {
    const key = ownerKey(service);
    if (key) controller.enqueue(key);
  });

  // Leadership transitions run one after another, never interleaved.
  let transitions = Promise.resolve();
  let leading = false;
  let resync: NodeJS.Timeout | undefined;
  let staleSweep: NodeJS.Timeout | undefined;
  const stopping = new AbortController();
  const startLeading = async () => {
    leading = true;
    metrics.leader.set(1);
    await Promise.all(informers.map((i) => i.waitForSync()));
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
    while (!ca && leading && !stopping.signal.aborted) {
      try {
        ca = await loadOrCreateCA(client, options.namespace, options.caSecret, fieldManager, log);
      } catch (err) {
        const delay = backoff.next();
        log.warn("cannot load or create the relay CA; retrying", { error: describeError(err), retryInMs: delay });
        await sleep(delay, undefined, { signal: stopping.signal }).catch(() => undefined);
      }
    }
    if (!leading || stopping.signal.aborted) return;
    // Streams that already run keep their slot, whatever the caps say now.
    for (const s of streams.list()) {
      if (isTerminal(s.status?.phase) || s.metadata.deletionTimestamp) continue;
      const running = pods.get(s.metadata.namespace!, relayName(s.metadata.name!));
      if (running) capacity.seed(keyOf(s), s.metadata.namespace!);
    }
    controller.start();
    usage.start();
    for (const s of streams.list()) controller.enqueue(keyOf(s));
    for (const d of devices.list()) ensureToken(d);
    resync = setInterval(() => {
      for (const s of streams.list()) controller.enqueue(keyOf(s));
      for (const d of devices.list()) ensureToken(d);
    }, options.resyncPeriodMs);
    resync.unref();
    if (options.hubListen) {
      const reports = new HubReports(client, events, log);
      staleSweep = setInterval(() => {
        for (const d of staleDevices(devices.list(), Date.now())) {
          const lastSeen = Date.parse(d.status?.lastSeen ?? "") || Date.now();
          void reports
            .device(d, {
              connected: false,
              lastSeen,
              agentVersion: d.status?.agentVersion,
              services: d.status?.services?.map((x) => x.name),
              replica: holderOf(d),
              lostReason: `no hub replica has heard from the agent since ${d.status?.lastSeen ?? "ever"} (its replica ${holderOf(d)} is gone)`,
            })
            .catch(() => undefined);
        }
      }, 30_000);
      staleSweep.unref();
    }
    log.info("reconciling", { streams: streams.list().length, workers: options.workers });
  };
  const stopLeading = async () => {
    leading = false;
    metrics.leader.set(0);
    clearInterval(resync);
    clearInterval(staleSweep);
    usage.stop();
    await controller.stop();
    capacity.clear();
    ctx.expectedPods.clear();
    ctx.endings.clear();
  };
  const transition = (step: () => Promise<void>) => {
    transitions = transitions.then(step).catch((err: unknown) => {
      log.error("leadership transition failed", { error: describeError(err) });
    });
    return transitions;
  };

  for (const i of informers) {
    metrics.cacheSynced.set({ resource: i.name }, 0);
    i.start();
    void i.waitForSync().then(() => metrics.cacheSynced.set({ resource: i.name }, 1));
  }

  const readiness = () => {
    const waiting = informers.filter((i) => !i.synced).map((i) => i.name);
    return waiting.length ? `waiting for caches to sync: ${waiting.join(", ")}` : "";
  };
  let endpoints: EndpointsServer;
  try {
    endpoints = await serveEndpoints(options.metricsListen, registry, readiness);
  } catch (err) {
    await Promise.all(informers.map((i) => i.stop()));
    throw err;
  }

  // Every replica serves the hub, so every replica needs the CA (created by whoever comes first).
  // The hub has its own client and sockets: agents' load must not starve reconciles.
  const hubClient = new KubeClient(client.kubeConfig, { maxSockets: 16, userAgent: "devicestreams-hub" });
  const hubEvents = new EventRecorder(hubClient, options.identity, log, (type, reason) =>
    metrics.events.inc({ type, reason }),
  );
  let hub: Hub | undefined;
  const startHub = async () => {
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
    while (!stopping.signal.aborted) {
      try {
        ca ??= await loadOrCreateCA(client, options.namespace, options.caSecret, fieldManager, log);
        const h = new Hub(
          {
            listen: options.hubListen,
            dnsNames: options.hubDnsNames,
            ipAddresses: options.hubIpAddresses,
            certValidityMs: options.deviceCertValidityMs,
            enrollRateLimit: options.hubEnrollRateLimit,
          },
          {
            client: hubClient,
            devices,
            streams,
            pods,
            events: hubEvents,
            ca,
            replica: options.identity,
            registry,
            log,
          },
        );
        await h.start();
        hub = h;
        for (const d of devices.list()) ensureToken(d);
        return;
      } catch (err) {
        const delay = backoff.next();
        log.warn("cannot start the hub; retrying", { error: describeError(err), retryInMs: delay });
        await sleep(delay, undefined, { signal: stopping.signal }).catch(() => undefined);
      }
    }
  };
  const hubStarted = options.hubListen ? startHub() : Promise.resolve();

  const elector = options.leaderElect
    ? new LeaderElector({
        client,
        namespace: options.namespace,
        name: options.leaseName,
        identity: options.identity,
        leaseDurationMs: options.leaseDurationMs,
        renewDeadlineMs: options.renewDeadlineMs,
        retryPeriodMs: options.retryPeriodMs,
        fieldManager,
        log,
        onStartedLeading: () => void transition(startLeading),
        onStoppedLeading: () => transition(stopLeading),
      })
    : undefined;
  if (elector) elector.start();
  else void transition(startLeading);

  let stopped: Promise<void> | undefined;
  return {
    identity: options.identity,
    metricsPort: endpoints.port,
    hubPort: () => hub?.port,
    isLeader: () => leading && controller.started,
    stop: () =>
      (stopped ??= (async () => {
        stopping.abort();
        await hubStarted;
        await hub?.stop();
        // Workers finish their reconcile before the lease is released, so no successor overlaps.
        if (elector) await elector.stop();
        else await transition(stopLeading);
        await Promise.all(informers.map((i) => i.stop()));
        await endpoints.close();
        client.close();
        hubClient.close();
        log.info("stopped");
      })()),
  };
}

/** `devicestreams operator [flags]`: runs until SIGTERM or SIGINT, then shuts down gracefully. */
export async function runOperator(argv: string[]): Promise<void> {
  const parsed = parseOperatorOptions(argv);
  if (!parsed) return;
  const log = createLogger("operator");
  log.info("starting", { version, ...parsed.printable });
  const operator = await startOperator(parsed.options, { log });
  log.info("serving /metrics, /healthz and /readyz", { port: operator.metricsPort });
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        log.warn("second signal; exiting at once", { signal });
        process.exit(1);
      }
      log.info("signal received; shutting down (send it again to exit at once)", { signal });
      operator.stop().then(resolve, (err: unknown) => {
        log.error("shutdown failed", { error: describeError(err) });
        resolve();
      });
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
