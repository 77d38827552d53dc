// What a Kubernetes Service does for the hub in front of several operator replicas: one address,
// each new connection goes to the next backend that accepts it. A backend that refuses (its
// replica was killed) is skipped, so agents reconnect to a live replica through the same address.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpBalancer {
  port: number;
  close(): Promise<void>;
}

export async function startTcpBalancer(backends: () => number[]): Promise<TcpBalancer> {
  let next = 0;
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  };
  const server: Server = createServer((client) => {
    track(client);
    client.pause();
    const ports = backends();
    const tryBackend = (attempt: number) => {
      if (attempt >= ports.length) {
        client.destroy();
        return;
      }
      const port = ports[next++ % ports.length]!;
      const upstream = connect({ host: "127.0.0.1", port });
      track(upstream);
      let connected = false;
      upstream.once("error", () => {
        if (!connected && !client.destroyed) tryBackend(attempt + 1);
      });
      upstream.once("connect", () => {
        connected = true;
        client.pipe(upstream).pipe(client);
        client.resume();
        const cut = () => {
          client.destroy();
          upstream.destroy();
        };
        upstream.once("error", cut).once("close", cut);
        client.once("error", cut).once("close", cut);
      });
    };
    tryBackend(0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
