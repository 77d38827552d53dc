// A plain-HTTP reverse proxy in front of the test API server that records every request exactly
// as the client sent it (method, raw path and query, user agent), so that a test can prove what an
// operator asked the API server for. It forwards under the TLS identity of `upstream`; its own
// KubeConfig (`kubeConfig`) points clients at it.
import { createServer } from "node:http";
import { type RequestOptions, request } from "node:https";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

export interface RecordedRequest {
  method: string;
  /** The raw request target: path and query, undecoded. */
  url: string;
  userAgent: string;
}

export interface RecordingProxy {
  kubeConfig: KubeConfig;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function startRecordingProxy(upstream: KubeConfig): Promise<RecordingProxy> {
  const target = new URL(upstream.getCurrentCluster()!.server);
  const tls: RequestOptions = {};
  await upstream.applyToHTTPSOptions(tls);
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", userAgent: req.headers["user-agent"] ?? "" });
    const up = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        // Node holds headers back until the first body byte; a quiet watch must still start.
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    // A client that goes away (an aborted watch) ends the upstream request too.
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    // client-node speaks plain HTTP only with skipTLSVerify; the proxy is on loopback.
    clusters: [
      { name: "proxy", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
    ],
    users: [{ name: "via-proxy" }],
    contexts: [{ name: "proxy", cluster: "proxy", user: "via-proxy" }],
    currentContext: "proxy",
  });
  return {
    kubeConfig,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
