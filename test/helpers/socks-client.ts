// A SOCKS5 client for tests (RFC 1928, no authentication, CONNECT): asks a listener for a host
// by name, or by IP address to see it refused, and returns the reply code with the socket, ready
// for the tunnelled protocol when the reply is success.
import { connect, type Socket } from "node:net";

export interface SocksResult {
  /** REP of the reply (0: succeeded); undefined when the listener closed without one. */
  reply: number | undefined;
  socket: Socket;
  /** From connect to the reply. */
  ms: number;
}

/** Reads exactly `n` bytes (or what came before the close). */
function read(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const done = () => {
      socket.off("data", onData);
      socket.off("close", done);
      socket.pause();
      if (got.length > n) socket.unshift(got.subarray(n));
      resolve(got.subarray(0, n));
    };
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) done();
    };
    socket.on("data", onData);
    socket.once("close", done);
    socket.resume();
  });
}

/** `host`: a name (ATYP 3), or `{ ipv4 }` to send an address (ATYP 1). */
export async function socks5Connect(
  proxyPort: number,
  host: string | { ipv4: string },
  port: number,
  timeoutMs = 30_000,
): Promise<SocksResult> {
  const started = Date.now();
  const socket = connect(proxyPort, "127.0.0.1");
  socket.on("error", () => {});
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("close", () => reject(new Error("the SOCKS listener closed the connection")));
    });
    socket.write(Buffer.from([5, 1, 0]));
    const method = await read(socket, 2);
    if (method[1] !== 0) return { reply: undefined, socket, ms: Date.now() - started };
    const address =
      typeof host === "string"
        ? Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host, "latin1")])
        : Buffer.from([1, ...host.ipv4.split(".").map(Number)]);
    socket.write(Buffer.concat([Buffer.from([5, 1, 0]), address, Buffer.from([port >> 8, port & 255])]));
    const reply = await read(socket, 10);
    return { reply: reply.length >= 2 ? reply[1] : undefined, socket, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}
