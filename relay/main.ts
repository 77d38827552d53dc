// `devicestreams relay`: serves one DeviceStream (--config), or many at once (--streams-dir, pool
// mode). Both sides dial in; the relay dials only the operator's hub, to ask whether a user may
// connect (--access-review-address).

import { DeviceStreamsError } from "../runtime/errors.ts";
import { maxFrameBytes } from "../runtime/grpc-options.ts";
import { createRegistry, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { LogSampler } from "../runtime/log-sampler.ts";
import { type OptionValues, parseOptions, printable } from "../runtime/options.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { AccessReviewClient } from "../transport/access-review-service.ts";
import { relayOptionSpecs } from "./contract.ts";
import { relayMetrics } from "./metrics.ts";
import { type RelayServer, startRelayServer } from "./server.ts";
import { loadSingleStream } from "./single-stream.ts";
import { SniContexts } from "./sni-contexts.ts";
import { streamServices } from "./stream-config.ts";
import { StreamPool } from "./stream-pool.ts";
import { StreamRegistry } from "./stream-registry.ts";
import { maxAccessTtlMs } from "./user-access.ts";

export interface RunningRelay {
  port: number;
  metricsPort: number;
  stop(): Promise<void>;
}

export async function runRelay(argv: string[]): Promise<RunningRelay | undefined> {
  const summary =
    "Pairs the service side and the device side of a stream (or of many: --streams-dir), over gRPC with TLS.";
  const o = parseOptions("relay", summary, relayOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("relay");
  const streamsDir = o["streams-dir"];
  if (!!o.config === !!streamsDir) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      "give --config (one stream, with --tls-cert and --tls-key) or --streams-dir (a pool of streams), not both or neither",
    );
  }
  const hub = hubFromFlags(o);
  const registry = createRegistry("relay");
  const metrics = relayMetrics(registry);
  const keepalive = { timeMs: o["keepalive-time"], timeoutMs: o["keepalive-timeout"] };
  const common = {
    flagLimits: {
      maxConnections: o["max-connections"],
      idleTimeoutMs: o["idle-timeout"],
      dialTimeoutMs: o["dial-timeout"],
      attachWaitMs: o["attach-wait"],
      maxFrameBytes,
      bandwidthBytesPerSecond: o["bandwidth-limit"],
    },
    lifetimeMs: o["max-lifetime"],
    accessTtlMs: o["access-review-ttl"],
    metrics,
    log,
  };
  const deviceCaPem = o["device-ca"] ? readPem(o["device-ca"], "device CA").toString() : undefined;
  // Pool mode: the cap on gRPC connections grows with the streams served (an agent and a client each).
  const cap = (streams: number) =>
    o["max-grpc-connections"] + (streamsDir ? o["grpc-connections-per-stream"] * streams : 0);
  let server: RelayServer | undefined;
  const streams = new StreamRegistry({
    routeByName: !!streamsDir,
    onCount: (n) => {
      metrics.streams.set(n);
      server?.setMaxConnections(cap(n));
    },
  });

  let closeSource: () => void;
  let tls: { certPem: Buffer; keyPem: Buffer } | { sni: SniContexts };
  if (o.config) {
    const single = loadSingleStream({
      ...common,
      configPath: o.config,
      certPath: o["tls-cert"],
      keyPath: o["tls-key"],
      deviceCa: o["device-ca"],
    });
    const { config } = single;
    log.info("starting", {
      stream: config.stream,
      services: streamServices(config).join(","),
      ...printable(relayOptionSpecs, o),
    });
    const reviewer =
      hub && new AccessReviewClient({ address: hub.address, tls: { caPem: hub.caPem, ...single.tls }, keepalive });
    streams.add("config", single.start(reviewer));
    tls = single.tls;
    closeSource = () => {
      single.close();
      reviewer?.close();
    };
  } else {
    log.info("starting", { ...printable(relayOptionSpecs, o) });
    const sniLog = new LogSampler({ intervalMs: 10_000 });
    const contexts = new SniContexts({
      clientCaPem: deviceCaPem,
      idFor: (name) => streams.idFor(name),
      onRefused: (reason) => {
        metrics.grpcConnectionsRefused.inc({ reason });
        const suppressed = sniLog.take(reason);
        if (suppressed !== undefined)
          log.warn("gRPC connection refused", { reason, suppressed: suppressed || undefined });
      },
    });
    const pool = new StreamPool({
      ...common,
      dir: streamsDir!,
      registry: streams,
      contexts,
      deviceCa: !!deviceCaPem,
      accessReview: hub && { ...hub, keepalive },
    });
    pool.start();
    tls = { sni: contexts };
    closeSource = () => pool.close();
  }

  server = await startRelayServer({
    listen: o.listen,
    tls,
    deviceCaPem,
    keepalive,
    limits: {
      maxConnections: cap(streams.size),
      maxPerSource: o["max-grpc-connections-per-source"],
      handshakeTimeoutMs: o["handshake-timeout"],
      unauthenticatedTimeoutMs: o["unauthenticated-timeout"],
    },
    streams,
    metrics,
    log,
  });
  metrics.streams.set(streams.size);
  let draining = false;
  const endpoints = await serveEndpoints(o["metrics-listen"], registry, () => (draining ? "draining" : ""), {
    // One stream's report as always; a pool's, one per stream.
    "/usage": () => (streamsDir ? { streams: streams.usage() } : streams.all()[0]?.usage.report()),
  });
  log.info("ready", {
    grpcPort: server.port,
    metricsPort: endpoints.port,
    streams: streamsDir ? streams.size : undefined,
  });

  let stopped: Promise<void> | undefined;
  const stop = (graceMs = o["drain-timeout"]) =>
    (stopped ??= (async () => {
      draining = true;
      closeSource();
      streams.close();
      log.info("draining", { connections: streams.connectionCount, graceMs });
      for (const s of streams.all()) {
        s.pairing.refuseNew("DS_RELAY_DRAINING", "the relay is shutting down; connect again in a moment");
      }
      const deadline = Date.now() + graceMs;
      while (streams.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      for (const s of streams.all()) {
        s.pairing.end("shutdown", "DS_RELAY_SHUTDOWN", "the relay shut down; connect again to reach the new relay");
      }
      server.forceClose();
      await endpoints.close();
      log.info("stopped");
    })());
  onShutdownSignals(
    log,
    () => stop(),
    () => stop(0),
  );
  return { port: server.port, metricsPort: endpoints.port, stop: () => stop(0) };
}

/** The operator's hub, which the relay asks about users' tokens; none in static mode. */
function hubFromFlags(o: OptionValues<typeof relayOptionSpecs>): { address: string; caPem: Buffer } | undefined {
  if (o["access-review-ttl"] > maxAccessTtlMs) {
    throw new DeviceStreamsError("DS_USAGE", "--access-review-ttl must be at most 10s: revoked access must end soon");
  }
  const address = o["access-review-address"];
  if (!address) return undefined;
  const ca = o["access-review-ca"];
  if (!ca) throw new DeviceStreamsError("DS_USAGE", "--access-review-address needs --access-review-ca (the hub's CA)");
  return { address, caPem: readPem(ca, "hub CA") };
}
