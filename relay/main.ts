// `devicestreams relay`: serves one DeviceStream. Both sides dial in; the relay dials only the
// operator's hub, to ask whether a user may connect (--access-review-address).

import { DeviceStreamsError } from "../runtime/errors.ts";
import { type KeepaliveOptions, maxFrameBytes } from "../runtime/grpc-options.ts";
import { createRegistry, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { setLongTimeout } from "../runtime/long-timeout.ts";
import { type OptionValues, parseOptions, printable } from "../runtime/options.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { AccessReviewClient } from "../transport/access-review-service.ts";
import { changedFields, effectiveLimits, fixedFieldChanged, watchConfigFile } from "./config-reload.ts";
import { relayOptionSpecs } from "./contract.ts";
import { relayMetrics } from "./metrics.ts";
import { Pairing } from "./pairing.ts";
import { startRelayServer } from "./server.ts";
import { loadStreamConfig, parseStreamConfig, type StreamConfig, streamServices } from "./stream-config.ts";
import { UsageTracker } from "./usage.ts";
import { maxAccessTtlMs, UserAccess } from "./user-access.ts";

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
  const loaded = loadStreamConfig(o.config);
  let config = loaded.config;
  const tls = { certPem: readPem(o["tls-cert"], "relay certificate"), keyPem: readPem(o["tls-key"], "relay key") };
  const deviceCa = o["device-ca"];
  if (config.device && !deviceCa) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `${o.config} binds the stream to Device ${config.device.namespace}/${config.device.name}: give --device-ca, the CA its certificate chains to`,
    );
  }
  const flagLimits = {
    maxConnections: o["max-connections"],
    idleTimeoutMs: o["idle-timeout"],
    dialTimeoutMs: o["dial-timeout"],
    attachWaitMs: o["attach-wait"],
    maxFrameBytes,
    bandwidthBytesPerSecond: o["bandwidth-limit"],
  };
  let limits = effectiveLimits(flagLimits, config);
  const keepalive = { timeMs: o["keepalive-time"], timeoutMs: o["keepalive-timeout"] };
  const lifetimeMs = o["max-lifetime"];
  log.info("starting", {
    stream: config.stream,
    services: streamServices(config).join(","),
    ...printable(relayOptionSpecs, o),
  });

  const registry = createRegistry("relay");
  const metrics = relayMetrics(registry);
  const pairing = new Pairing(config, limits, metrics, log);
  const reviewer = accessReviewClient(o, tls, keepalive);
  const users = new UserAccess({
    reviewer,
    ttlMs: o["access-review-ttl"],
    stream: () => config.stream,
    metrics,
    log,
  });
  const server = await startRelayServer({
    listen: o.listen,
    tls,
    deviceCaPem: deviceCa ? readPem(deviceCa, "device CA").toString() : undefined,
    keepalive,
    limits: {
      maxConnections: o["max-grpc-connections"],
      maxPerSource: o["max-grpc-connections-per-source"],
      handshakeTimeoutMs: o["handshake-timeout"],
      unauthenticatedTimeoutMs: o["unauthenticated-timeout"],
    },
    config: () => config,
    users,
    pairing,
    metrics,
    log,
  });
  let draining = false;
  const usage = new UsageTracker(config.stream, metrics);
  usage.start();
  const endpoints = await serveEndpoints(o["metrics-listen"], registry, () => (draining ? "draining" : ""), {
    "/usage": () => usage.report(),
  });

  // Both timers follow the current config: a reload sets them again.
  let sweepTimer: NodeJS.Timeout | undefined;
  let cancelEnd = () => {};
  const lifetimeEnd = lifetimeMs ? Date.now() + lifetimeMs : Number.POSITIVE_INFINITY;
  const armEnd = () => {
    cancelEnd();
    cancelEnd = () => {};
    const endAt = Math.min(lifetimeEnd, config.expiresAt ? Date.parse(config.expiresAt) : Number.POSITIVE_INFINITY);
    if (!Number.isFinite(endAt)) return;
    // A long timer: a stream may live 720h, beyond what one Node timer waits.
    cancelEnd = setLongTimeout(() => {
      log.info("stream lifetime reached; ending every connection");
      pairing.end(
        "lifetime",
        "DS_STREAM_EXPIRED",
        `stream ${config.stream} reached its maximum lifetime; open a new stream`,
      );
    }, endAt - Date.now());
  };
  const setTimers = () => {
    clearInterval(sweepTimer);
    const sweep = Math.max(250, Math.min(limits.idleTimeoutMs / 4, 5000));
    if (limits.idleTimeoutMs) sweepTimer = setInterval(() => pairing.sweepIdle(), sweep).unref();
    armEnd();
  };
  setTimers();

  // A changed relay.json applies to the running relay; one that is invalid, or changes what
  // cannot change live, is refused and the relay keeps the one it has.
  const reload = (text: string) => {
    let next: StreamConfig;
    try {
      next = parseStreamConfig(text, o.config);
    } catch (err) {
      metrics.configReloads.inc({ result: "refused" });
      log.warn("changed relay.json refused; keeping the one in use", { reason: (err as Error).message });
      return;
    }
    const fixed = fixedFieldChanged(config, next);
    if (fixed) {
      metrics.configReloads.inc({ result: "refused" });
      log.warn("changed relay.json refused; keeping the one in use", { reason: `${o.config}: ${fixed}` });
      return;
    }
    const changed = changedFields(config, next);
    config = next;
    limits = effectiveLimits(flagLimits, next);
    pairing.setLimits(limits);
    setTimers();
    metrics.configReloads.inc({ result: "applied" });
    log.info("relay.json reloaded; open connections keep running", { changed: changed.join(",") || "nothing" });
  };
  const configWatch = watchConfigFile(o.config, loaded.text, reload, (message) =>
    log.warn("cannot read relay.json; keeping the one in use", { reason: message }),
  );
  log.info("ready", { grpcPort: server.port, metricsPort: endpoints.port });

  let stopped: Promise<void> | undefined;
  const stop = (graceMs = o["drain-timeout"]) =>
    (stopped ??= (async () => {
      draining = true;
      clearInterval(sweepTimer);
      cancelEnd();
      configWatch.close();
      usage.stop();
      log.info("draining", { connections: pairing.connectionCount, graceMs });
      pairing.refuseNew("DS_RELAY_DRAINING", "the relay is shutting down; connect again in a moment");
      const deadline = Date.now() + graceMs;
      while (pairing.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      pairing.end("shutdown", "DS_RELAY_SHUTDOWN", "the relay shut down; connect again to reach the new relay");
      server.forceClose();
      reviewer?.close();
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

/** The hub client for access reviews, with the relay's certificate as its identity; none in static mode. */
function accessReviewClient(
  o: OptionValues<typeof relayOptionSpecs>,
  tls: { certPem: Buffer; keyPem: Buffer },
  keepalive: KeepaliveOptions,
): AccessReviewClient | undefined {
  if (o["access-review-ttl"] > maxAccessTtlMs) {
    throw new DeviceStreamsError("DS_USAGE", "--access-review-ttl must be at most 10s: revoked access must end soon");
  }
  const address = o["access-review-address"];
  if (!address) return undefined;
  const ca = o["access-review-ca"];
  if (!ca) throw new DeviceStreamsError("DS_USAGE", "--access-review-address needs --access-review-ca (the hub's CA)");
  return new AccessReviewClient({
    address,
    tls: { caPem: readPem(ca, "hub CA"), certPem: tls.certPem, keyPem: tls.keyPem },
    keepalive,
  });
}
