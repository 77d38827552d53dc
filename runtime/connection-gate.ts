// The front door of a gRPC server that anyone on the network can reach (the relay, the hub). An
// HTTP/2 server would accept every TCP connection, give it minutes to finish TLS and keep it for
// ever after: a peer that never authenticates could hold sessions without limit. Here our own
// net.Server accepts the sockets and hands them to the HTTP/2 server behind it (grpc-js's through
// Server.createConnectionInjector, or the relay's own node:http2 server), so that we decide: how
// many connections at once and per source address, how long the TLS handshake may take, and how
// soon a session must make its first authenticated call. Until that call the session keeps
// HTTP/2's 64 KiB connection window; it is widened only then.
import type { EventEmitter } from "node:events";
import type { Http2Session } from "node:http2";
import { createServer, type Server as NetServer, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Server, ServerCredentials } from "@grpc/grpc-js";

/** The HTTP/2 server behind the gate: its events say when TLS and HTTP/2 are up. */
export interface GatedServer {
  http2: EventEmitter;
  /** Hands an accepted TCP socket to the HTTP/2 server (TLS starts there). */
  inject(socket: Socket): void;
}

import { splitHostPort } from "./http-endpoints.ts";
import { peerKey } from "./peer-address.ts";

export interface ConnectionLimits {
  /** Connections open at once, authenticated or not. */
  maxConnections: number;
  /** Connections open at once from one source address (IPv6: one /64). */
  maxPerSource: number;
  /** A connection whose TLS handshake has not finished this long after accept is closed (0: never). */
  handshakeTimeoutMs: number;
  /** A connection that has made no authenticated call this long after accept is closed (0: never). */
  unauthenticatedTimeoutMs: number;
}

/** Why a connection was refused or closed: the values of a metric's `reason` label. */
export type GateRefusal = "max_connections" | "max_per_source" | "handshake_timeout" | "unauthenticated_timeout";

export interface ConnectionGateOptions {
  listen: string;
  limits: ConnectionLimits;
  /** The HTTP/2 connection window once the session is authenticated; undefined leaves the default. */
  authenticatedWindowBytes?: number;
  onRefused(reason: GateRefusal, source: string): void;
  /** Connections open now, after each change. */
  onOpen?(count: number): void;
}

interface Connection {
  socket: Socket;
  source: string;
  secure: boolean;
  authenticated: boolean;
  session?: Http2Session;
  timer?: NodeJS.Timeout;
}

/** `address:port` as grpc-js's call.getPeer() writes it, so that a call finds its connection. */
const peerOf = (s: { remoteAddress?: string; remotePort?: number }) => `${s.remoteAddress}:${s.remotePort}`;

export class ConnectionGate {
  private readonly o: ConnectionGateOptions;
  private readonly net: NetServer;
  private readonly byPeer = new Map<string, Connection>();
  private readonly perSource = new Map<string, number>();
  private readonly cutSockets = new WeakSet<object>();
  readonly http2: EventEmitter;
  port = 0;

  private constructor(front: GatedServer, o: ConnectionGateOptions) {
    this.o = o;
    this.http2 = front.http2;
    this.http2.on("secureConnection", (tls: TLSSocket) => {
      const c = this.byPeer.get(peerOf(tls));
      if (c) c.secure = true;
    });
    this.http2.on("session", (session: Http2Session) => {
      const c = session.socket && this.byPeer.get(peerOf(session.socket));
      if (c) c.session = session;
    });
    // noDelay: small frames (WINDOW_UPDATE, pings, short replies) must not wait for an ACK.
    this.net = createServer({ noDelay: true }, (socket) => this.admit(socket, (s) => front.inject(s)));
    // Counted by the kernel-facing side of net.Server, before a Socket object is even built.
    this.net.maxConnections = o.limits.maxConnections;
    this.net.on("drop", (d?: { remoteAddress?: string; remotePort?: number }) =>
      o.onRefused("max_connections", d ? peerKey(peerOf(d)) : "unknown"),
    );
  }

  /** Listens on `o.listen` for `front`, whose services must already be added. */
  static async listen(front: GatedServer, o: ConnectionGateOptions): Promise<ConnectionGate> {
    const gate = new ConnectionGate(front, o);
    const { host, port } = splitHostPort(o.listen);
    await new Promise<void>((resolve, reject) => {
      gate.net.once("error", reject);
      gate.net.listen({ host, port }, () => {
        gate.net.off("error", reject);
        resolve();
      });
    });
    gate.port = (gate.net.address() as { port: number }).port;
    return gate;
  }

  /**
   * A call on the connection of `peer` (call.getPeer()) passed authentication: the connection may
   * stay, and its session gets the wide window. Later calls on it change nothing.
   */
  authenticated(peer: string): void {
    const c = this.byPeer.get(peer);
    if (!c || c.authenticated) return;
    c.authenticated = true;
    clearTimeout(c.timer);
    if (this.o.authenticatedWindowBytes && c.session && !c.session.destroyed) {
      c.session.setLocalWindowSize(this.o.authenticatedWindowBytes);
    }
  }

  /** A new cap on connections at once (a pool relay's grows with its streams); open ones stay. */
  setMaxConnections(n: number): void {
    this.net.maxConnections = n;
  }

  /** Whether the gate itself closed this raw socket (its TLS layer then reports a failed handshake). */
  closedByGate(socket: object): boolean {
    return this.cutSockets.has(socket);
  }

  get openConnections(): number {
    return this.byPeer.size;
  }

  /** Stops accepting; open connections are grpc-js's to close (forceShutdown, tryShutdown). */
  close(): void {
    this.net.close();
    for (const c of this.byPeer.values()) clearTimeout(c.timer);
  }

  private admit(socket: Socket, inject: (s: Socket) => void): void {
    const peer = peerOf(socket);
    if (socket.remoteAddress === undefined) return void socket.destroy(); // gone before we looked
    const source = peerKey(peer);
    const fromSource = this.perSource.get(source) ?? 0;
    if (fromSource >= this.o.limits.maxPerSource) {
      this.o.onRefused("max_per_source", source);
      // A reset, not a FIN: a flood must not leave the server holding TIME_WAIT for it.
      socket.resetAndDestroy();
      return;
    }
    this.perSource.set(source, fromSource + 1);
    const c: Connection = { socket, source, secure: false, authenticated: false };
    this.byPeer.set(peer, c);
    this.o.onOpen?.(this.byPeer.size);
    this.watch(c, Date.now());
    socket.on("error", () => {}); // the TLS layer reports; an unhandled 'error' must not crash us
    socket.once("close", () => {
      clearTimeout(c.timer);
      this.byPeer.delete(peer);
      const n = (this.perSource.get(source) ?? 1) - 1;
      if (n > 0) this.perSource.set(source, n);
      else this.perSource.delete(source);
      this.o.onOpen?.(this.byPeer.size);
    });
    inject(socket);
  }

  /** Checks the connection's deadlines now and again at the next one, until it authenticates. */
  private watch(c: Connection, acceptedAt: number): void {
    const within = (ms: number) => (ms > 0 ? ms : Number.POSITIVE_INFINITY); // 0: never
    const handshake = within(this.o.limits.handshakeTimeoutMs);
    const auth = within(this.o.limits.unauthenticatedTimeoutMs);
    const age = Date.now() - acceptedAt;
    if (!c.secure && age >= handshake) this.shut(c, "handshake_timeout");
    else if (age >= auth) this.shut(c, "unauthenticated_timeout");
    else {
      const next = (c.secure ? auth : Math.min(handshake, auth)) - age;
      if (Number.isFinite(next)) c.timer = setTimeout(() => this.watch(c, acceptedAt), next);
    }
  }

  private shut(c: Connection, reason: GateRefusal): void {
    if (c.authenticated) return;
    this.o.onRefused(reason, c.source);
    this.cutSockets.add(c.socket);
    c.session?.destroy();
    c.socket.resetAndDestroy();
  }
}

/** The front of a grpc-js server (the hub), with `credentials` for its connections. */
export function grpcJsFront(server: Server, credentials: ServerCredentials): GatedServer {
  const known = new Set(http2Servers(server).keys());
  const injector = server.createConnectionInjector(credentials);
  const added = [...http2Servers(server).keys()].find((s) => !known.has(s));
  if (!added) throw new Error("grpc-js internals changed: the injector's HTTP/2 server is not in Server.http2Servers");
  return { http2: added, inject: (socket) => injector.injectConnection(socket) };
}

function http2Servers(server: Server): Map<EventEmitter, unknown> {
  const servers = (server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  if (!servers) throw new Error("grpc-js internals changed: Server.http2Servers is gone; update ConnectionGate");
  return servers;
}
