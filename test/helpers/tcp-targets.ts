// Small real TCP servers that tests tunnel to.
import { createHash } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";

export interface TcpTarget {
  server: Server;
  port: number;
  address: string;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function listen(handler: (socket: Socket) => void): Promise<TcpTarget> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    handler(socket);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Echoes every byte back; echoes the FIN too (closes its side after the client's FIN). */
export function echoServer(): Promise<TcpTarget> {
  return listen((s) => s.pipe(s));
}

/** Reads everything until FIN, then answers with the SHA-256 of what it read and closes. */
export function hashServer(): Promise<TcpTarget> {
  return listen((s) => {
    const h = createHash("sha256");
    s.on("data", (c) => h.update(c));
    s.on("end", () => s.end(h.digest("hex")));
  });
}

export function sha256(data: Buffer | Buffer[]): string {
  const h = createHash("sha256");
  for (const b of Array.isArray(data) ? data : [data]) h.update(b);
  return h.digest("hex");
}
