// `devicestreams relay`: serves one DeviceStream. Both sides dial in; the relay dials nobody.

import { parseDuration } from "../runtime/duration.ts";
import { maxFrameBytes } from "../runtime/grpc-options.ts";
import { createRegistry, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { parseOptions, positiveInt, printable, requireOption } from "../runtime/options.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { relayMetrics } from "./metrics.ts";
import { Pairing } from "./pairing.ts";
import { startRelayServer } from "./server.ts";
import { loadStreamConfig } from "./stream-config.ts";
import { UsageTracker } from "./usage.ts";

export const relayOptionSpecs = {
  listen: { description: "gRPC (TLS) address for agents and clients", default: "0.0.0.0:8443" },
  "metrics-listen": { description: "HTTP address for /metrics, /healthz, /readyz", default: "0.0.0.0:9090" },
  config: { description: "stream config JSON (stream, service, credential digests)" },
  "tls-cert": { description: "serving certificate (PEM)" },
  "tls-key": { description: "serving key (PEM)", secret: true },
  "max-connections": { description: "concurrent tunnelled connections", default: "1000" },
  "bandwidth-limit": { description: "bytes per second each way for the whole stream (0: unlimited)", default: "0" },
  "idle-timeout": { description: "reset a connection idle this long (0: never)", default: "1h" },
  "max-lifetime": { description: "end the stream this long after start (0: never)", default: "0" },
  "dial-timeout": { description: "how long the device may take to reach its target", default: "10s" },
  "attach-wait": { description: "how long a client waits for the device to attach", default: "5s" },
  "keepalive-time": { description: "ping a quiet peer after", default: "10s" },
  "keepalive-timeout": { description: "declare a peer dead when a ping goes unanswered for", default: "5s" },
  "drain-timeout": { description: "on SIGTERM, let open connections finish for up to", default: "30s" },
};

export interface RunningRelay {
  port: number;
  metricsPort: number;
  stop(): Promise<void>;
}

export async function runRelay(argv: string[]): Promise<RunningRelay | undefined> {
  const summary = "Pairs the service side and the device side of one stream, over gRPC with TLS.";
  const o = parseOptions("relay", summary, relayOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("relay");
  const config = loadStreamConfig(requireOption("relay", "config", o.config));
  const tls = {
    certPem: readPem(requireOption("relay", "tls-cert", o["tls-cert"]), "relay certificate"),
    keyPem: readPem(requireOption("relay", "tls-key", o["tls-key"]), "relay key"),
  };
  const limits = {
    maxConnections: positiveInt("max-connections", o["max-connections"]),
    idleTimeoutMs: parseDuration(o["idle-timeout"]!),
    dialTimeoutMs: parseDuration(o["dial-timeout"]!),
    attachWaitMs: parseDuration(o["attach-wait"]!),
    maxFrameBytes,
    bandwidthBytesPerSecond: positiveInt("bandwidth-limit", o["bandwidth-limit"]),
  };
  const keepalive = { timeMs: parseDuration(o["keepalive-time"]!), timeoutMs: parseDuration(o["keepalive-timeout"]!) };
  const lifetimeMs = parseDuration(o["max-lifetime"]!);
  log.info("starting", { stream: config.stream, service: config.service, ...printable(relayOptionSpecs, o) });

  const registry = createRegistry("relay");
  const metrics = relayMetrics(registry);
  const pairing = new Pairing(config, limits, metrics, log);
  const server = await startRelayServer({
    listen: o.listen!,
    tls,
    keepalive,
    config: () => config,
    pairing,
    metrics,
    log,
  });
  let draining = false;
  const usage = new UsageTracker(config.stream, metrics);
  usage.start();
  const endpoints = await serveEndpoints(o["metrics-listen"]!, registry, () => (draining ? "draining" : ""), {
    "/usage": () => usage.report(),
  });

  const timers: NodeJS.Timeout[] = [];
  const sweep = Math.max(250, Math.min(limits.idleTimeoutMs / 4, 5000));
  if (limits.idleTimeoutMs) timers.push(setInterval(() => pairing.sweepIdle(), sweep).unref());
  const endAt = Math.min(
    lifetimeMs ? Date.now() + lifetimeMs : Number.POSITIVE_INFINITY,
    config.expiresAt ? Date.parse(config.expiresAt) : Number.POSITIVE_INFINITY,
  );
  if (Number.isFinite(endAt)) {
    timers.push(
      setTimeout(
        () => {
          log.info("stream lifetime reached; ending every connection");
          pairing.end(
            "lifetime",
            "DS_STREAM_EXPIRED",
            `stream ${config.stream} reached its maximum lifetime; open a new stream`,
          );
        },
        Math.max(0, endAt - Date.now()),
      ),
    );
  }
  log.info("ready", { grpcPort: server.port, metricsPort: endpoints.port });

  let stopped: Promise<void> | undefined;
  const stop = (graceMs = parseDuration(o["drain-timeout"]!)) =>
    (stopped ??= (async () => {
      draining = true;
      for (const t of timers) clearTimeout(t);
      usage.stop();
      log.info("draining", { connections: pairing.connectionCount, graceMs });
      pairing.refuseNew("DS_RELAY_DRAINING", "the relay is shutting down; connect again in a moment");
      const deadline = Date.now() + graceMs;
      while (pairing.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      pairing.end("shutdown", "DS_RELAY_SHUTDOWN", "the relay shut down; connect again to reach the new relay");
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
