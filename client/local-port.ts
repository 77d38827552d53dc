// Local-port mode: every TCP connection accepted on the local address becomes one tunnelled
// connection through the relay.
import { createServer, type Server, type Socket } from "node:net";
import { describeError } from "../runtime/errors.ts";
import { maxFrameBytes } from "../runtime/grpc-options.ts";
import type { Logger } from "../runtime/log.ts";
import { relayFromFlags } from "../transport/call-error.ts";
import type { RelayClient, ServiceChoice, SourceCredential } from "../transport/relay-client.ts";
import { bridge } from "../transport/tcp-bridge.ts";

export interface LocalPortForward {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function forwardLocalPort(
  relay: RelayClient,
  credential: SourceCredential,
  host: string,
  port: number,
  log: Logger,
  /** Called with each connection's error, besides the log line (the plugin explains some once). */
  onError?: (err: Error) => void,
  /** The service every connection reaches; unset: the stream's first. */
  choice?: ServiceChoice,
): Promise<LocalPortForward> {
  const sockets = new Set<Socket>();
  let next = 1;
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const n = next++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    bridge(socket, relay.connect(credential, choice), {
      maxFrameBytes,
      side: "client",
      relay: relayFromFlags,
      onEnd: (end) => {
        if (end.error) {
          log.warn("connection ended with an error", { connection: n, reason: describeError(end.error) });
          onError?.(end.error);
        } else log.debug("connection closed", { connection: n, sent: end.bytesOut, received: end.bytesIn });
      },
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    server,
    port: typeof address === "object" && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
