// A gRPC server on node:http2 for the data path's methods (docs/adr/0002). It accepts sockets from
// the connection gate (it never listens itself), speaks TLS 1.3 with h2 only, answers each
// request on a known path with an H2ServerCall, and pings each session as grpc-js's server does:
// a peer that stops answering for keepalive time + timeout loses its session, and with it every
// call on it.
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { Socket } from "node:net";
import type { TlsOptions } from "node:tls";
import { status } from "@grpc/grpc-js";
import type { GatedServer } from "../runtime/connection-gate.ts";
import type { KeepaliveOptions } from "../runtime/grpc-options.ts";
import type { ServerTls } from "../runtime/tls.ts";
import { grpcContentType, grpcResponseContentType, statusTrailers } from "./grpc-wire.ts";
import { H2ServerCall } from "./h2-server-call.ts";

/** The context of each handshake chosen by the server name the client sent (a pool relay's streams). */
export type SniTls = Omit<ServerTls, "certPem" | "keyPem"> & { sniCallback: NonNullable<TlsOptions["SNICallback"]> };

export interface GrpcH2ServerOptions {
  tls: ServerTls | SniTls;
  keepalive: KeepaliveOptions;
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindowBytes: number;
  /** The largest DATA frame we accept (SETTINGS_MAX_FRAME_SIZE). */
  maxFrameBytes: number;
  /** Request headers we accept, in bytes: metadata is the caller's, and bounded before it is read. */
  maxHeaderBytes: number;
  /** Handlers by method path, e.g. /devicestreams.v1alpha1.Relay/Connect. */
  methods: Record<string, (call: H2ServerCall) => void>;
}

export class GrpcH2Server implements GatedServer {
  readonly http2: Http2SecureServer;
  private readonly sessions = new Set<Http2Session>();
  private readonly o: GrpcH2ServerOptions;

  constructor(o: GrpcH2ServerOptions) {
    this.o = o;
    const ca = o.tls.clientCaPem;
    this.http2 = createSecureServer({
      ...("sniCallback" in o.tls ? { SNICallback: o.tls.sniCallback } : { cert: o.tls.certPem, key: o.tls.keyPem }),
      ...(ca ? { ca, requestCert: true, rejectUnauthorized: !o.tls.clientCertOptional } : {}),
      minVersion: "TLSv1.3",
      ALPNProtocols: ["h2"],
      allowHTTP1: false,
      // Node refuses new streams once a session's nghttp2 memory passes 10 MB: at ~9,600 open
      // connections on one session (found by the benchmark). grpc-js lifts the same limit; what a
      // session holds is bounded by its streams' windows and the relay's connection caps instead.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
      maxSendHeaderBlockLength: o.maxHeaderBytes,
      settings: {
        initialWindowSize: o.streamWindowBytes,
        maxFrameSize: o.maxFrameBytes,
        maxConcurrentStreams: 100_000,
        maxHeaderListSize: o.maxHeaderBytes,
      },
    });
    this.http2.on("session", (session: Http2Session) => this.watch(session));
    this.http2.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.route(stream, headers));
  }

  inject(socket: Socket): void {
    this.http2.emit("connection", socket);
  }

  /** Ends every session at once (the gate stops accepting on its own). */
  forceClose(): void {
    for (const session of this.sessions) session.destroy();
    this.http2.close();
  }

  private route(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on("error", () => {}); // a reset stream; its call (if any) reports through 'close'
    const type = String(headers["content-type"] ?? "");
    if (headers[":method"] !== "POST" || !type.startsWith(grpcContentType)) {
      // Not gRPC: HTTP's own answer, as the gRPC spec asks of servers.
      stream.respond({ ":status": 415, "content-type": "text/plain" }, { endStream: false });
      stream.end("this port speaks gRPC (POST, content-type application/grpc) only\n");
      return;
    }
    const handler = this.o.methods[String(headers[":path"])];
    if (!handler) {
      const trailers = statusTrailers(status.UNIMPLEMENTED, `unknown method ${headers[":path"]}`);
      stream.respond({ ":status": 200, "content-type": grpcResponseContentType, ...trailers }, { endStream: true });
      return;
    }
    handler(new H2ServerCall(stream, headers));
  }

  private watch(session: Http2Session): void {
    this.sessions.add(session);
    session.on("error", () => {}); // its streams close, and their calls say so
    let pinger: NodeJS.Timeout | undefined;
    let unanswered: NodeJS.Timeout | undefined;
    const { timeMs, timeoutMs } = this.o.keepalive;
    if (timeMs > 0) {
      pinger = setInterval(() => {
        if (unanswered || session.destroyed) return;
        unanswered = setTimeout(() => session.destroy(), timeoutMs);
        const sent = session.ping(() => {
          clearTimeout(unanswered);
          unanswered = undefined;
        });
        if (!sent) {
          clearTimeout(unanswered);
          unanswered = undefined;
        }
      }, timeMs);
    }
    session.once("close", () => {
      clearInterval(pinger);
      clearTimeout(unanswered);
      this.sessions.delete(session);
    });
  }
}
