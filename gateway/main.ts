// `devicestreams gateway`: one TLS address for every relay and the hub, routed by server name
// without terminating TLS.

import { DeviceStreamsError } from "../runtime/errors.ts";
import { createRegistry, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { parseOptions, printable } from "../runtime/options.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { gatewayMetrics } from "./metrics.ts";
import { gatewayOptionSpecs } from "./options.ts";
import { parseRoute, RouteTable, type Upstream } from "./routes.ts";
import { readRoutesFile, watchRoutesFile } from "./routes-file.ts";
import { startGatewayServer } from "./server.ts";

export interface RunningGateway {
  port: number;
  metricsPort: number;
  stop(): Promise<void>;
}

/** Flag routes and file routes together; a name in both is refused (which one was meant?). */
function merged(flags: Map<string, Upstream>, file: Map<string, Upstream>, fileName: string): Map<string, Upstream> {
  for (const name of file.keys()) {
    if (flags.has(name)) {
      throw new DeviceStreamsError("DS_GATEWAY_ROUTES_INVALID", `${name} is routed by --route and by ${fileName}`);
    }
  }
  return new Map([...flags, ...file]);
}

export async function runGateway(argv: string[]): Promise<RunningGateway | undefined> {
  const summary = "Routes TLS connections to relays and the hub by server name (SNI), without decrypting them.";
  const o = parseOptions("gateway", summary, gatewayOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("gateway");
  if (!o.route.length && !o["routes-file"] && !o["relay-domain"]) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      "nothing to route: pass --relay-domain, --route NAME=HOST:PORT or --routes-file; run `devicestreams gateway --help`",
    );
  }
  const flagRoutes = new Map(o.route.map((r) => parseRoute(r)));
  const rule = o["relay-domain"] ? { domain: o["relay-domain"], upstream: o["relay-upstream"] } : undefined;
  const file = o["routes-file"];
  let routes = new RouteTable(merged(flagRoutes, file ? readRoutesFile(file) : new Map(), file ?? ""), rule);
  log.info("starting", { ...printable(gatewayOptionSpecs, o), exactRoutes: routes.size });

  const registry = createRegistry("gateway");
  const metrics = gatewayMetrics(registry);
  metrics.routes.set(routes.size);
  const unwatch = file
    ? watchRoutesFile(
        file,
        (fileRoutes) => {
          routes = routes.withExact(merged(flagRoutes, fileRoutes, file));
          metrics.routes.set(routes.size);
          metrics.routeReloads.inc({ result: "ok" });
        },
        () => metrics.routeReloads.inc({ result: "error" }),
        log,
      )
    : () => {};
  const server = await startGatewayServer({
    listen: o.listen,
    routes: () => routes,
    limits: {
      handshakeTimeoutMs: o["handshake-timeout"],
      connectTimeoutMs: o["connect-timeout"],
      maxConnections: o["max-connections"],
      maxConnectionsPerSource: o["max-connections-per-source"],
      maxClientHelloBytes: o["max-client-hello-bytes"],
    },
    metrics,
    log,
  });
  let draining = false;
  const endpoints = await serveEndpoints(o["metrics-listen"], registry, () => (draining ? "draining" : ""));
  log.info("ready", { port: server.port, metricsPort: endpoints.port });

  let stopped: Promise<void> | undefined;
  const stop = (graceMs = o["drain-timeout"]) =>
    (stopped ??= (async () => {
      draining = true;
      unwatch();
      log.info("draining", { connections: server.connections, graceMs });
      await server.stopAccepting();
      const deadline = Date.now() + graceMs;
      while (server.connections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
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
