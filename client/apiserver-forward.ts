// The relay reached through the API server, for users with nothing but a kubeconfig: a loopback
// port whose every connection becomes a port-forward to the relay Pod (kube/port-forward.ts), so
// the relay's TLS and the tunnel run unchanged inside it. The first WebSocket is opened before the
// port is offered, so a missing permission or a gone Pod is an error now, not a stalled dial later.
import { createServer, type Server } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";
import { dialPortForward, type PortForwardStream } from "../kube/port-forward.ts";
import type { Logger } from "../runtime/log.ts";
import { explainKubeError } from "./kube-errors.ts";

export interface ApiServerForward {
  /** 127.0.0.1:PORT, to dial instead of the relay. */
  address: string;
  close(): Promise<void>;
}

export async function forwardViaApiServer(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
  log: Logger,
): Promise<ApiServerForward> {
  const what = `open a port-forward to the relay Pod "${pod}" in namespace "${namespace}" (pods/portforward)`;
  const dial = () => dialPortForward(kc, namespace, pod, port);
  let spare: PortForwardStream | undefined;
  try {
    spare = await dial();
  } catch (err) {
    throw explainKubeError(err, what);
  }
  const server: Server = createServer({ noDelay: true }, (socket) => {
    // The first connection takes the WebSocket opened to check access, even if it has ended since:
    // then the connection ends with the kubelet's reason, as any later one would.
    const first = spare;
    spare = undefined;
    socket.pause();
    (first ? Promise.resolve(first) : dial()).then(
      (stream) => {
        stream.splice(socket, (text) => log.warn("port-forward to the relay Pod ended", { pod, error: text }));
        socket.resume();
      },
      (err) => {
        log.warn("port-forward to the relay Pod failed", {
          pod,
          error: (explainKubeError(err, what) as Error).message,
        });
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port: local } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${local}`,
    close: () =>
      new Promise<void>((resolve) => {
        spare?.terminate();
        server.close(() => resolve());
      }),
  };
}
