// The kubelet's half of `pods/portforward`, for the kubelet stand-in: an HTTPS server the API
// server proxies WebSocket port-forwards to (/portForward/NAMESPACE/POD[/UID]?ports=PORT), which
// accepts only the API server's client certificate and speaks v4.channel.k8s.io as the kubelet
// does (kube/port-forward.ts has the framing). A Node object names its address and port, which is
// how the API server finds it.

import { createServer, type Server } from "node:https";
import { connect } from "node:net";
import type { TLSSocket } from "node:tls";
import { WebSocketServer } from "ws";
import { isNotFound, type KubeClient } from "../../kube/client.ts";
import {
  channelMessage,
  dataChannel,
  errorChannel,
  PortForwardStream,
  portForwardProtocol,
  portPreamble,
} from "../../kube/port-forward.ts";
import type { IssuedCert } from "./test-ca.ts";

export interface KubeletTls {
  serving: IssuedCert;
  clientCaPem: string;
  clientName: string;
}

export interface PortForwardServer {
  port: number;
  close(): Promise<void>;
}

/** `podIp` finds a running Pod's address; undefined means no such Pod runs here. */
export async function startPortForwardServer(
  tls: KubeletTls,
  podIp: (namespace: string, name: string) => string | undefined,
  note: (line: string) => void,
): Promise<PortForwardServer> {
  const server: Server = createServer({
    cert: tls.serving.certPem,
    key: tls.serving.keyPem,
    ca: tls.clientCaPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 4 << 20,
    handleProtocols: (offered) => (offered.has(portForwardProtocol) ? portForwardProtocol : false),
  });
  server.on("request", (_req, res) => {
    res.writeHead(404).end("the kubelet stand-in serves only WebSocket port-forwards\n");
  });
  server.on("upgrade", (req, socket, head) => {
    const peer = (socket as TLSSocket).getPeerCertificate();
    const url = new URL(req.url ?? "/", "https://kubelet");
    const m = /^\/portForward\/([^/]+)\/([^/]+)(?:\/[^/]+)?$/.exec(url.pathname);
    // The API server passes the ports as `port`; kubectl to the kubelet directly says `ports`.
    const port = Number(url.searchParams.get("port") ?? url.searchParams.get("ports"));
    if (peer?.subject?.CN !== tls.clientName || !m || !Number.isInteger(port) || port < 1 || port > 65535) {
      note(`port-forward refused: ${req.url} from ${peer?.subject?.CN ?? "no client certificate"}`);
      socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    const [namespace, name] = [decodeURIComponent(m[1]!), decodeURIComponent(m[2]!)];
    const ip = podIp(namespace, name);
    if (!ip) {
      socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = new PortForwardStream(ws, { readsPreamble: false });
      ws.send(portPreamble(dataChannel, port));
      ws.send(portPreamble(errorChannel, port));
      const target = connect({ host: ip, port, noDelay: true });
      let connected = false;
      target.pause();
      target.once("connect", () => {
        connected = true;
        stream.splice(target, (text) => note(`port-forward ${namespace}/${name}:${port}: ${text}`));
        target.resume();
      });
      target.once("error", (err) => {
        if (!connected) {
          // As the kubelet: the reason on the error channel, then the end.
          ws.send(
            channelMessage(errorChannel, Buffer.from(`error forwarding port ${port} to pod ${name}: ${err.message}`)),
          );
          ws.close(1000);
        }
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The Node the stand-in's Pods are bound to, with the address and port the API server dials. */
export async function registerNode(client: KubeClient, name: string, kubeletPort: number, manager: string) {
  const path = `/api/v1/nodes/${name}`;
  const node = { apiVersion: "v1", kind: "Node", metadata: { name } };
  try {
    await client.get(path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await client.create("/api/v1/nodes", node, manager);
  }
  await client.apply(
    `${path}/status`,
    {
      ...node,
      status: {
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
        daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
      },
    },
    manager,
  );
}
