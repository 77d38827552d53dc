// One end of the hop: a server or a client, in either mode, sending or receiving. The coordinator
// (../hop-floor.ts) forks two of these and drives them over IPC, so set-up and shutdown stay out
// of the measured interval.
import http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import { Client, type ClientDuplexStream, Server, type ServerDuplexStream } from "@grpc/grpc-js";
import {
  channelOptions,
  defaultKeepalive,
  serverOptions,
  sessionWindowBytes,
  widenSessionWindows,
  withServerWindow,
} from "../../runtime/grpc-options.ts";
import { channelCredentials, serverCredentials } from "../../runtime/tls.ts";
import { cpuSeconds } from "../procs.ts";

export type Mode = "h2" | "grpc";

export interface PeerConfig {
  mode: Mode;
  role: "server" | "client";
  sends: boolean;
  messageBytes: number;
  /** A whole number of messages. */
  totalBytes: number;
  /** Per-stream HTTP/2 receive window; the product's is flowControlWindowBytes. */
  windowBytes: number;
  port?: number;
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** The coordinator's commands and the peer's replies. */
export type ToPeer = { cmd: "config"; config: PeerConfig } | { cmd: "mark" } | { cmd: "go" } | { cmd: "cpu" };
export type FromPeer =
  | { port: number }
  | { cipher: string }
  | { ready: true }
  | { marked: true }
  | { received: number; cpu: number }
  | { cpu: number };

/** What both modes' streams look like to the pump. */
interface Pipe {
  write(b: Buffer): boolean;
  once(event: "drain", cb: () => void): unknown;
  on(event: "data", cb: (b: Buffer) => void): unknown;
  on(event: "error", cb: (err: Error) => void): unknown;
  end(): unknown;
}

// grpc-js frames each message into a new buffer (5-byte header + copy) on write, so passing the
// same Buffer every time is safe in both modes and node:http2 writes it without a copy.
const passthrough = (b: Buffer): Buffer => b;
const method = {
  path: "/bench.HopFloor/Pump",
  requestStream: true,
  responseStream: true,
  requestSerialize: passthrough,
  requestDeserialize: passthrough,
  responseSerialize: passthrough,
  responseDeserialize: passthrough,
};

const send = (m: FromPeer) => process.send!(m);
const cpu = () => cpuSeconds([process.pid]);

function describe(socket: TLSSocket): string {
  return `${socket.getProtocol()} ${socket.getCipher().standardName}`;
}

// Both ends swap one 1-byte hello first, so the connection and the stream exist before the
// coordinator marks the CPU clocks; every later byte is payload.
function run(c: PeerConfig, pipe: Pipe): void {
  let c0 = 0;
  let hello = false;
  let received = 0;
  pipe.on("error", () => {}); // the coordinator kills the peers at the end of a case, mid-stream
  pipe.on("data", (b) => {
    if (!hello) {
      hello = true;
      if (c.role === "server") pipe.write(Buffer.of(1));
      else send({ ready: true });
      return;
    }
    received += b.length;
    if (received === c.totalBytes) send({ received, cpu: cpu() - c0 });
  });
  if (c.role === "client") pipe.write(Buffer.of(1));
  process.on("message", (m: ToPeer) => {
    if (m.cmd === "mark") {
      c0 = cpu();
      send({ marked: true });
    } else if (m.cmd === "cpu") send({ cpu: cpu() - c0 });
    else if (m.cmd === "go" && c.sends) pump(c, pipe);
  });
}

function pump(c: PeerConfig, pipe: Pipe): void {
  const payload = Buffer.alloc(c.messageBytes, 0x5a); // allocated once, written every time
  let sent = 0;
  const more = () => {
    while (sent < c.totalBytes) {
      sent += payload.length;
      if (!pipe.write(payload)) {
        pipe.once("drain", more);
        return;
      }
    }
    pipe.end();
  };
  more();
}

function listenH2(c: PeerConfig): void {
  const server = http2.createSecureServer({
    cert: c.certPem,
    key: c.keyPem,
    // The same windows and session-memory cap grpc-js and runtime/grpc-options.ts give the product.
    settings: { initialWindowSize: c.windowBytes },
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
  });
  server.on("secureConnection", (s: TLSSocket) => send({ cipher: describe(s) }));
  server.on("session", (session) => {
    session.once("connect", () => session.setLocalWindowSize(sessionWindowBytes));
    session.on("error", () => {}); // see run()
  });
  server.on("stream", (stream) => {
    stream.respond({ ":status": 200 });
    run(c, stream);
  });
  server.listen(0, "127.0.0.1", () => send({ port: (server.address() as { port: number }).port }));
}

function connectH2(c: PeerConfig): void {
  const session = http2.connect(`https://127.0.0.1:${c.port}`, {
    ca: c.caPem,
    settings: { initialWindowSize: c.windowBytes },
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
  });
  session.once("connect", () => session.setLocalWindowSize(sessionWindowBytes));
  session.on("error", () => {}); // see run()
  run(c, session.request({ ":method": "POST", ":path": "/pump" }));
}

function listenGrpc(c: PeerConfig): void {
  const server = new Server(serverOptions(defaultKeepalive));
  server.addService({ pump: method }, { pump: (call: ServerDuplexStream<Buffer, Buffer>) => run(c, call) });
  const creds = withServerWindow(serverCredentials({ certPem: c.certPem, keyPem: c.keyPem }), c.windowBytes);
  server.bindAsync("127.0.0.1:0", creds, (err, port) => {
    if (err) throw err;
    widenSessionWindows(server);
    // Same internal map widenSessionWindows uses: grpc-js exposes no TLS details otherwise.
    const h2s = (server as unknown as { http2Servers: Map<http2.Http2SecureServer, unknown> }).http2Servers;
    for (const h2 of h2s.keys()) h2.on("secureConnection", (s: TLSSocket) => send({ cipher: describe(s) }));
    send({ port });
  });
}

function connectGrpc(c: PeerConfig): void {
  const client = new Client(`127.0.0.1:${c.port}`, channelCredentials({ caPem: c.caPem }), {
    ...channelOptions(defaultKeepalive),
    "grpc-node.flow_control_window": c.windowBytes,
  });
  const call: ClientDuplexStream<Buffer, Buffer> = client.makeBidiStreamRequest(method.path, passthrough, passthrough);
  run(c, call);
}

export function peer(): void {
  process.once("message", (m: ToPeer) => {
    if (m.cmd !== "config") throw new Error(`expected config, got ${m.cmd}`);
    const c = m.config;
    if (c.mode === "h2") (c.role === "server" ? listenH2 : connectH2)(c);
    else (c.role === "server" ? listenGrpc : connectGrpc)(c);
  });
}
