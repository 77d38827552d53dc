// `connect --socks5 host:port`: one local port where each client picks the service per connection,
// by SOCKS5 (the first byte 0x05) or HTTP CONNECT (a letter), the host naming the service. The
// tunnel is asked for first; only when the relay says the device reached the target (the Connect
// call's response headers) does the client get its success reply, so every refusal reaches it as
// its protocol's error code, and a log line here says why. Everything a local client sends before
// that is bounded: the request's size, the time to send it, and the clients served at once.
import { createServer, type Socket } from "node:net";
import { status } from "@grpc/grpc-js";
import { describeError } from "../runtime/errors.ts";
import { maxFrameBytes } from "../runtime/grpc-options.ts";
import type { Logger } from "../runtime/log.ts";
import { LogSampler } from "../runtime/log-sampler.ts";
import { callError, relayFromFlags } from "../transport/call-error.ts";
import type { ServiceChoice } from "../transport/relay-client.ts";
import { bridge, type FrameCall } from "../transport/tcp-bridge.ts";
import { parseConnect, response } from "./http-connect.ts";
import { type Parsed, type ProxyRefusal, socksReply, tunnelRefusal } from "./proxy-request.ts";
import { methodChosen, noAcceptableMethods, parseGreeting, parseRequest, reply } from "./socks5.ts";

export interface SocksListenerOptions {
  host: string;
  port: number;
  /** A tunnelled connection to the chosen service (relay.connect with the stream's credential). */
  open(choice: ServiceChoice): FrameCall;
  /** Local clients at once, from accept to close; more are refused in their protocol. */
  maxClients: number;
  /** A client that has not sent its whole request this long after connecting is closed. */
  handshakeTimeoutMs: number;
  log: Logger;
  /** Each tunnel's failure, besides the log line (the plugin explains some once). */
  onError?(err: Error): void;
}

export interface SocksListener {
  port: number;
  /** Local clients connected now. */
  readonly clients: number;
  close(): Promise<void>;
}

type Protocol = "socks5" | "http";

const socks4Rejected = Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);

/** Bytes a client may send before its success reply (SSH and TLS clients speak first). */
const maxEarlyBytes = 64 * 1024;

/**
 * Sends a refusal and our FIN. The socket allows half-open connections (the tunnel needs them),
 * so a client that never closes its side would keep its place: it is closed shortly after.
 */
function endWith(socket: Socket, data: Buffer): void {
  socket.end(data);
  setTimeout(() => socket.destroy(), 2_000).unref();
}

export async function listenSocks(o: SocksListenerOptions): Promise<SocksListener> {
  const sockets = new Set<Socket>();
  // A log line per refusal, but a client that retries in a loop gets one per second and reason.
  const sampler = new LogSampler({ intervalMs: 1_000 });
  let next = 1;

  const refused = (socket: Socket, protocol: Protocol | "unknown", request: string, r: ProxyRefusal) => {
    const suppressed = sampler.take(`${r.code}/${protocol}/${request}`);
    if (suppressed === undefined) return;
    o.log.warn("local request refused", {
      client: `${socket.remoteAddress}:${socket.remotePort}`,
      protocol,
      request,
      reason: r.code,
      detail: r.message,
      suppressed: suppressed || undefined,
    });
  };

  const serve = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Counted from accept: a client still sending its request holds a place too, so a flood of
    // silent connections cannot crowd out the clients being served for longer than the timeout.
    const overCapacity = sockets.size > o.maxClients;
    let buf: Buffer = Buffer.alloc(0);
    let protocol: Protocol | undefined;
    let stage: "greeting" | "request" = "greeting";
    const ignoreErrors = () => {};
    socket.on("error", ignoreErrors);
    const stop = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
    };
    const refuse = (r: ProxyRefusal, request = "") => {
      stop();
      refused(socket, protocol ?? "unknown", request, r);
      if (protocol === "http") endWith(socket, response(r.http, r));
      else if (protocol === "socks5") endWith(socket, reply(r.socks));
      else socket.destroy();
    };
    const timer = setTimeout(
      () =>
        refuse({
          socks: socksReply.generalFailure,
          http: 408,
          code: "DS_SOCKS_HANDSHAKE_TIMEOUT",
          message: `no complete request within ${o.handshakeTimeoutMs} ms`,
        }),
      o.handshakeTimeoutMs,
    );
    const onEnd = () => {
      stop();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!protocol) {
        if (buf[0] === 0x05) protocol = "socks5";
        else if (buf[0]! >= 0x41 && buf[0]! <= 0x5a) protocol = "http";
        else {
          const socks4 = buf[0] === 0x04;
          stop();
          refused(socket, "unknown", socks4 ? "SOCKS4" : `0x${buf[0]!.toString(16).padStart(2, "0")}…`, {
            socks: 0,
            http: 0,
            code: "DS_SOCKS_REQUEST_INVALID",
            message: socks4
              ? "a SOCKS4 request: this listener speaks SOCKS5 (with the host name) and HTTP CONNECT"
              : `first byte 0x${buf[0]!.toString(16).padStart(2, "0")} is neither SOCKS5 nor HTTP CONNECT`,
          });
          if (socks4) endWith(socket, socks4Rejected);
          else socket.destroy();
          return;
        }
      }
      if (protocol === "http") {
        handle(parseConnect(buf));
        return;
      }
      if (stage === "greeting") {
        const g = parseGreeting(buf);
        if (g.kind === "more") return;
        if (g.kind === "refused") return refuse(g.refusal);
        if (!g.value.acceptable) {
          stop();
          refused(socket, "socks5", "", {
            socks: 0xff,
            http: 0,
            code: "DS_SOCKS_REQUEST_INVALID",
            message: "the client offers only SOCKS5 authentication methods; this listener takes none (method 0)",
          });
          endWith(socket, noAcceptableMethods);
          return;
        }
        socket.write(methodChosen);
        buf = buf.subarray(g.used);
        stage = "request";
        if (!buf.length) return;
      }
      handle(parseRequest(buf));
    };
    const handle = (r: Parsed<ServiceChoice>) => {
      if (r.kind === "more") return;
      if (r.kind === "refused") return refuse(r.refusal);
      stop();
      const rest = buf.subarray(r.used);
      const request = `${r.value.service}:${r.value.port ?? 0}`;
      if (overCapacity) {
        return refuse(
          {
            socks: socksReply.generalFailure,
            http: 503,
            code: "DS_SOCKS_CLIENT_LIMIT",
            message: `${o.maxClients} local clients are connected, the listener's limit (--max-local-clients)`,
          },
          request,
        );
      }
      tunnel(socket, protocol!, r.value, request, rest);
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
  };

  const tunnel = (socket: Socket, protocol: Protocol, choice: ServiceChoice, request: string, rest: Buffer) => {
    const n = next++;
    const call = o.open(choice);
    let settled = false;
    // Still read while the device is reached: a client that leaves (FIN or reset) is seen at once
    // and its call cancelled. What it sends early is held, up to a bound, then read no further.
    const held: Buffer[] = rest.length ? [rest] : [];
    let heldBytes = rest.length;
    const hold = (chunk: Buffer) => {
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes >= maxEarlyBytes) socket.pause();
    };
    const waiting = (on: boolean) => {
      for (const [event, fn] of [
        ["data", hold],
        ["end", gone],
        ["close", gone],
      ] as const) {
        if (on) socket.on(event, fn);
        else socket.off(event, fn);
      }
    };
    function gone() {
      if (settled) return;
      settled = true;
      waiting(false);
      call.cancel();
      socket.destroy();
    }
    waiting(true);
    call.on("error", () => {}); // reported through 'status'
    call.once("metadata", () => {
      if (settled) return;
      settled = true;
      waiting(false);
      socket.pause();
      socket.write(protocol === "http" ? response(200) : reply(socksReply.succeeded));
      if (held.length) socket.unshift(Buffer.concat(held));
      o.log.debug("tunnel open", { connection: n, request });
      bridge(socket, call, {
        maxFrameBytes,
        side: "client",
        relay: relayFromFlags,
        onEnd: (end) => {
          if (end.error) {
            o.log.warn("connection ended with an error", { connection: n, reason: describeError(end.error) });
            o.onError?.(end.error);
          } else o.log.debug("connection closed", { connection: n, sent: end.bytesOut, received: end.bytesIn });
        },
      });
      socket.resume();
    });
    call.on("status", (s) => {
      if (settled) return;
      settled = true;
      waiting(false);
      // OK before the headers cannot come from a relay that paired the call: a failure all the same.
      const err = callError(
        s.code === status.OK ? { code: status.UNKNOWN, details: "the relay ended the call" } : s,
        relayFromFlags,
      );
      o.onError?.(err);
      const r = tunnelRefusal(err.code, err.message);
      refused(socket, protocol, request, r);
      endWith(socket, protocol === "http" ? response(r.http, r) : reply(r.socks));
    });
  };

  const server = createServer({ allowHalfOpen: true, noDelay: true }, serve);
  // Past twice the limit a connection is closed unread: the refusals above cost a little each.
  server.maxConnections = o.maxClients * 2;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : o.port,
    get clients() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
