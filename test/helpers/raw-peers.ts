// Peers that misbehave at a gRPC port below the gRPC layer: TCP connections that never speak,
// TLS handshakes that never finish, HTTP/2 sessions that never call. Each can come from its own
// loopback address (Linux routes all of 127.0.0.0/8 to lo), to exercise per-source caps.
import { once } from "node:events";
import { type ClientHttp2Session, connect as h2Connect } from "node:http2";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";

/** The n-th source address of a block: `loopback(2, 0)` is 127.2.0.1; a block holds 64 770. */
export function loopback(block: number, n: number): string {
  return `127.${block}.${Math.floor(n / 254)}.${(n % 254) + 1}`;
}

export interface Watched<S> {
  socket: S;
  /** Resolves when the connection closes, with how long after opening. */
  closed: Promise<number>;
  isClosed(): boolean;
}

function watch<S extends Socket>(socket: S): Watched<S> {
  const at = Date.now();
  let done = false;
  socket.on("error", () => {});
  // Not events.once: it rejects on 'error', and a reset is an expected ending here.
  const closed = new Promise<number>((resolve) =>
    socket.once("close", () => {
      done = true;
      resolve(Date.now() - at);
    }),
  );
  return { socket, closed, isClosed: () => done };
}

/** A TCP connection that sends nothing: to a TLS port, a handshake that never starts. */
export async function silentTcp(port: number, localAddress = "127.0.0.1"): Promise<Watched<Socket>> {
  const s = netConnect({ host: "127.0.0.1", port, localAddress });
  const w = watch(s);
  await Promise.race([once(s, "connect").catch(() => {}), w.closed]);
  return w;
}

let hello: Promise<Buffer> | undefined;
/** The first flight of a real TLS client (its ClientHello), captured once from a local listener. */
function clientHello(): Promise<Buffer> {
  hello ??= (async () => {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const client = tlsConnect({ host: "127.0.0.1", port: (server.address() as { port: number }).port });
    client.on("error", () => {});
    const [socket] = (await once(server, "connection")) as [Socket];
    const [bytes] = (await once(socket, "data")) as [Buffer];
    client.destroy();
    socket.destroy();
    server.close();
    return bytes;
  })();
  return hello;
}

/** A TLS handshake that never finishes: a ClientHello, then silence (the server's reply is never answered). */
export async function stalledHandshake(port: number, localAddress = "127.0.0.1"): Promise<Watched<Socket>> {
  const bytes = await clientHello();
  const w = await silentTcp(port, localAddress);
  if (!w.isClosed()) w.socket.write(bytes);
  return w;
}

/** A TLS client (ALPN h2) on a TCP connection from `localAddress`. */
function tlsFrom(port: number, ca: string, localAddress: string): TLSSocket {
  const socket = netConnect({ host: "127.0.0.1", port, localAddress });
  return tlsConnect({ socket, ca, servername: "localhost", ALPNProtocols: ["h2"] });
}

/** A TLS connection with a finished handshake (ALPN h2) that sends nothing after. */
export async function idleTls(port: number, ca: string, localAddress = "127.0.0.1"): Promise<Watched<TLSSocket>> {
  const s = tlsFrom(port, ca, localAddress);
  const w = watch(s as unknown as Socket) as unknown as Watched<TLSSocket>;
  await Promise.race([once(s, "secureConnect").catch(() => {}), w.closed]);
  return w;
}

/** An HTTP/2 session over TLS: connected, settings exchanged, no call yet. */
export async function h2Session(
  port: number,
  ca: string,
  localAddress = "127.0.0.1",
): Promise<{ session: ClientHttp2Session; closed: Promise<number> }> {
  const at = Date.now();
  const session = h2Connect(`https://localhost:${port}`, { createConnection: () => tlsFrom(port, ca, localAddress) });
  session.on("error", () => {});
  const closed = new Promise<number>((resolve) => session.once("close", () => resolve(Date.now() - at)));
  // Bounded: a server that never answers must not leave the caller waiting on a silent session.
  const timer = setTimeout(() => session.destroy(), 10_000);
  await Promise.race([once(session, "remoteSettings").catch(() => {}), closed]);
  clearTimeout(timer);
  return { session, closed };
}

/**
 * Starts a gRPC call with raw HTTP/2 headers and waits for its response headers or its end.
 * `message`: one gRPC message to send and end with (a unary call's request), else nothing is sent.
 */
export async function rawGrpcCall(
  session: ClientHttp2Session,
  path: string,
  metadata: Record<string, string>,
  message?: Buffer,
): Promise<{ status: string | undefined }> {
  const req = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...metadata,
  });
  req.on("error", () => {});
  if (message) {
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(message.length, 1);
    req.end(Buffer.concat([prefix, message]));
  }
  let status: string | undefined;
  const headers = new Promise<void>((resolve) => {
    req.on("response", (h) => {
      status = h["grpc-status"] as string | undefined;
      resolve();
    });
    req.on("trailers", (h) => {
      status = h["grpc-status"] as string | undefined;
    });
    req.on("close", () => resolve());
  });
  await headers;
  return { status };
}
