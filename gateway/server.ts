// The gateway's TCP server: reads each connection's ClientHello for its server name, connects to
// that name's upstream, replays the bytes it read and from then on only pipes both ways (TLS is
// never terminated: the relay's certificate and the peers' credentials stay end to end). Every
// refusal closes the client, counts it by reason and logs it (sampled: anyone can cause them).

import type { AddressInfo } from "node:net";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import type { Logger } from "../runtime/log.ts";
import { LogSampler } from "../runtime/log-sampler.ts";
import { ClientHelloError, ClientHelloReader, helloCodes } from "./client-hello.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { RouteTable, Upstream } from "./routes.ts";
import { SourceCaps } from "./source-caps.ts";
import { splice } from "./splice.ts";

export interface GatewayLimits {
  /** A connection that has not sent its whole ClientHello by then is closed. */
  handshakeTimeoutMs: number;
  /** Connecting to the upstream may take this long. */
  connectTimeoutMs: number;
  /** Connections open at once, in every phase. */
  maxConnections: number;
  /** Connections open at once from one source address. */
  maxConnectionsPerSource: number;
  /** Bytes buffered while waiting for a ClientHello, record headers included. */
  maxClientHelloBytes: number;
}

export interface GatewayServerOptions {
  listen: string;
  routes: () => RouteTable;
  limits: GatewayLimits;
  metrics: GatewayMetrics;
  log: Logger;
}

export interface GatewayServer {
  port: number;
  /** Connections open now (every phase). */
  readonly connections: number;
  /** Stops accepting; open connections go on. */
  stopAccepting(): Promise<void>;
  /** Resets every open connection. */
  forceClose(): void;
}

/** Why a connection was closed before being routed: the `reason` label. */
type Refusal =
  | ClientHelloError["reason"]
  | "unknown_name"
  | "handshake_timeout"
  | "over_capacity"
  | "source_over_capacity"
  | "upstream_refused"
  | "upstream_timeout"
  | "upstream_error"
  | "client_closed";

const codes: Partial<Record<Refusal, string>> = {
  ...helloCodes,
  unknown_name: "DS_GATEWAY_UNKNOWN_NAME",
  handshake_timeout: "DS_GATEWAY_HANDSHAKE_TIMEOUT",
  over_capacity: "DS_GATEWAY_OVER_CAPACITY",
  source_over_capacity: "DS_GATEWAY_OVER_CAPACITY",
  upstream_refused: "DS_GATEWAY_UPSTREAM_FAILED",
  upstream_timeout: "DS_GATEWAY_UPSTREAM_FAILED",
  upstream_error: "DS_GATEWAY_UPSTREAM_FAILED",
};

export async function startGatewayServer(o: GatewayServerOptions): Promise<GatewayServer> {
  const { limits, metrics, log } = o;
  const caps = new SourceCaps(limits.maxConnectionsPerSource);
  const sampler = new LogSampler();
  const open = new Set<Socket>();
  const handshaking = metrics.connectionsActive.labels("handshake");
  const routed = metrics.connectionsActive.labels("routed");
  handshaking.set(0);
  routed.set(0);

  /** Logs a refusal, at most once per reason every 10 s (the counter counts every one). */
  const refused = (reason: Refusal, source: string | undefined, message: string) => {
    metrics.connections.inc({ outcome: "refused", reason });
    if (reason === "client_closed") return; // the client's own choice: counted, not logged
    const left = sampler.take(reason);
    if (left === undefined) return;
    const code = codes[reason] ?? "";
    log.warn("connection refused", {
      reason,
      source,
      why: code ? `${code}: ${message}` : message,
      ...(left ? { alsoRefusedSinceLastLine: left } : {}),
    });
  };

  const onConnection = (client: Socket) => {
    const accepted = process.hrtime.bigint();
    const source = client.remoteAddress;
    client.on("error", () => {}); // each phase below handles errors; this keeps one from throwing
    if (open.size >= limits.maxConnections) {
      refused("over_capacity", source, `${limits.maxConnections} connections are open (--max-connections)`);
      client.resetAndDestroy();
      return;
    }
    const sourceKey = source ?? "unknown";
    if (!caps.take(sourceKey)) {
      refused(
        "source_over_capacity",
        source,
        `${limits.maxConnectionsPerSource} connections are open from this address (--max-connections-per-source)`,
      );
      client.resetAndDestroy();
      return;
    }
    open.add(client);
    handshaking.inc();
    let phase: "handshake" | "connecting" | "routed" | "done" = "handshake";
    client.once("close", () => {
      open.delete(client);
      caps.release(sourceKey);
      if (phase === "routed") routed.dec();
      else if (phase !== "done") handshaking.dec();
    });

    /** Closes a connection that was never routed. */
    const refuse = (reason: Refusal, message: string, upstream?: Socket) => {
      if (phase === "done" || phase === "routed") return;
      phase = "done";
      handshaking.dec();
      clearTimeout(timer);
      upstream?.destroy();
      refused(reason, source, message);
      client.resetAndDestroy();
    };

    const reader = new ClientHelloReader(limits.maxClientHelloBytes);
    const timer = setTimeout(
      () => refuse("handshake_timeout", `no ClientHello within ${limits.handshakeTimeoutMs} ms (--handshake-timeout)`),
      limits.handshakeTimeoutMs,
    );
    client.setNoDelay(true);
    // What came before the route was known, replayed to the upstream as it came. Bounded: the
    // reader refuses once it has seen maxClientHelloBytes without a ClientHello.
    const received: Buffer[] = [];
    const onData = (chunk: Buffer) => {
      received.push(chunk);
      let name: string;
      try {
        const r = reader.push(chunk);
        if (!r.done) return;
        name = r.serverName;
      } catch (err) {
        if (err instanceof ClientHelloError) refuse(err.reason, err.message);
        else refuse("malformed", String(err));
        return;
      }
      client.off("data", onData);
      client.pause();
      // The ClientHello is in: from here --connect-timeout bounds the wait, not --handshake-timeout.
      clearTimeout(timer);
      const up = o.routes().lookup(name);
      if (!up) {
        refuse("unknown_name", `no route for server name ${name}`);
        return;
      }
      phase = "connecting";
      dial(client, up, name, received);
    };
    client.on("data", onData);
    // A FIN right behind the ClientHello is a half-close (a client that has said all it will):
    // it is passed on once the upstream is connected.
    let clientEnded = false;
    client.once("end", () => {
      if (phase === "handshake") refuse("client_closed", "closed before its ClientHello");
      else clientEnded = true;
    });
    client.once("error", (err) => refuse("client_closed", err.message));

    const dial = (client: Socket, up: Upstream, name: string, hello: Buffer[]) => {
      const upstream = tcpConnect({ host: up.host, port: up.port, allowHalfOpen: true, noDelay: true });
      const where = `${up.host}:${up.port}`;
      const connectTimer = setTimeout(
        () =>
          refuse(
            "upstream_timeout",
            `upstream ${where} for ${name} did not accept within ${limits.connectTimeoutMs} ms (--connect-timeout)`,
            upstream,
          ),
        limits.connectTimeoutMs,
      );
      const onConnectError = (err: NodeJS.ErrnoException) => {
        clearTimeout(connectTimer);
        const reason = err.code === "ECONNREFUSED" ? "upstream_refused" : "upstream_error";
        refuse(reason, `cannot reach upstream ${where} for ${name}: ${err.message}`, upstream);
      };
      upstream.once("error", onConnectError);
      upstream.once("connect", () => {
        clearTimeout(connectTimer);
        if (phase !== "connecting") {
          upstream.destroy();
          return;
        }
        upstream.off("error", onConnectError);
        phase = "routed";
        clearTimeout(timer);
        handshaking.dec();
        routed.inc();
        metrics.routeSeconds.observe(Number(process.hrtime.bigint() - accepted) / 1e9);
        metrics.connections.inc({ outcome: "routed", reason: "" });
        splice(client, upstream, hello, clientEnded, metrics);
      });
    };
  };

  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
  // Above our own cap, the kernel's backlog is the queue; the cap answers with a reset and a count.
  const { host, port } = splitHostPort(o.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error("gateway listener failed", { err }));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return open.size;
    },
    stopAccepting: async () => {
      // close()'s callback waits for every open connection; draining waits for them separately.
      server.close();
    },
    forceClose: () => {
      for (const s of open) s.resetAndDestroy();
    },
  };
}
