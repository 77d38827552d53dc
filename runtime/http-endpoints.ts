// /metrics, /healthz and /readyz for every component, on a plain-HTTP port of their own so
// that Prometheus and the kubelet need no credentials of the data plane.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { version } from "./version.ts";

/** Empty when ready; otherwise what the component is still waiting for. */
export type Readiness = () => string;

export function createRegistry(component: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "devicestreams_" });
  // prom-client's *_active_{handles,requests,resources}_total are gauges, and a `_total` suffix
  // promises a counter (promtool check metrics refuses them). The same counts by type stay, as
  // `devicestreams_nodejs_active_handles{type}` etc.: sum them for the total.
  for (const what of ["handles", "requests", "resources"]) {
    registry.removeSingleMetric(`devicestreams_nodejs_active_${what}_total`);
  }
  const info = new Gauge({
    name: "devicestreams_build_info",
    help: "Always 1; labels carry the component, its version and the Node.js version.",
    labelNames: ["component", "version", "node_version"],
    registers: [registry],
  });
  info.set({ component, version, node_version: process.version }, 1);
  return registry;
}

export interface EndpointsServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Extra read-only JSON routes on the same server, e.g. the relay's `/usage`. */
export type JsonRoutes = Record<string, () => unknown | Promise<unknown>>;

export async function serveEndpoints(
  address: string,
  registry: Registry,
  readiness: Readiness,
  json: JsonRoutes = {},
): Promise<EndpointsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const route = Object.hasOwn(json, path) ? json[path] : undefined;
    if (route) {
      Promise.resolve()
        .then(route)
        .then(
          (body) => {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(`${JSON.stringify(body)}\n`);
          },
          (err: unknown) => {
            res.writeHead(500, { "content-type": "text/plain" });
            res.end(`${path} failed: ${String(err)}\n`);
          },
        );
      return;
    }
    if (path === "/metrics") {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(body);
        },
        (err: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(`metrics collection failed: ${String(err)}\n`);
        },
      );
      return;
    }
    if (path === "/healthz" || path === "/livez") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok\n");
      return;
    }
    if (path === "/readyz") {
      const waiting = readiness();
      res.writeHead(waiting ? 503 : 200, { "content-type": "text/plain" });
      res.end(waiting ? `not ready: ${waiting}\n` : "ok\n");
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: try /metrics, /healthz or /readyz\n");
  });
  const { host, port } = splitHostPort(address, 0);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Parses `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function splitHostPort(address: string, defaultPort?: number): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!m) {
    if (defaultPort !== undefined && address && !address.includes(":")) return { host: address, port: defaultPort };
    throw new Error(`"${address}" is not an address: write host:port, for example 127.0.0.1:8443`);
  }
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`"${address}" has port ${port}, above 65535`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}
