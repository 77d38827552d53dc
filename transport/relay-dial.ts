// The relay client's TLS connection: TCP to the relay (or HTTP CONNECT through a proxy), then
// TLS 1.3 offering only HTTP/2, with the CA and client certificate of runtime/tls.ts. Done here
// rather than by node:http2 so that a proxy's tunnel can carry it and every failure keeps the
// TLS library's own words (transport/call-error.ts names the causes from them).
import { isIP, type Socket } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import type { ClientTls } from "../runtime/tls.ts";
import { bypassesProxy, connectThroughProxy, type ProxySettings } from "./proxy.ts";

export interface DialOptions {
  /** host:port of the relay. */
  address: string;
  tls: ClientTls;
  /** TLS name to expect when it differs from the address's host (SNI and certificate check). */
  serverName?: string;
  proxy?: ProxySettings;
  /** TCP, proxy and TLS together; grpc-js's connect timeout is the same 20 s. */
  timeoutMs?: number;
}

/** Resolves with a TLS socket whose handshake (certificate checks included) has succeeded. */
export async function dialRelay(o: DialOptions): Promise<TLSSocket> {
  const { host, port } = splitHostPort(o.address);
  const timeoutMs = o.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  const tunnel =
    o.proxy && !bypassesProxy(host, o.proxy.noProxy)
      ? await connectThroughProxy(o.proxy, o.address, timeoutMs)
      : undefined;
  const name = o.serverName ?? host;
  const identity = o.tls.identity?.keyPair() ?? { certificate: o.tls.certPem, privateKey: o.tls.keyPem };
  const socket = tls.connect({
    ...(tunnel ? { socket: tunnel } : { host, port }),
    // RFC 6066: no SNI for an IP address; the certificate is still checked against it below.
    servername: isIP(name) ? undefined : name,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
    ca: o.tls.caPem,
    cert: identity.certificate,
    key: identity.privateKey,
    minVersion: "TLSv1.3",
    ALPNProtocols: ["h2"],
  });
  return handshake(socket, tunnel, deadline - Date.now(), timeoutMs);
}

function handshake(socket: TLSSocket, tunnel: Socket | undefined, leftMs: number, timeoutMs: number) {
  return new Promise<TLSSocket>((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      tunnel?.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no TLS connection within ${timeoutMs} ms`)), Math.max(0, leftMs));
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      socket.off("error", fail);
      // Small frames (WINDOW_UPDATE, PING acks, short replies) must not wait for an ACK.
      socket.setNoDelay(true);
      if (socket.alpnProtocol !== "h2") {
        return fail(new Error(`the server did not agree to HTTP/2 (ALPN ${socket.alpnProtocol || "none"})`));
      }
      resolve(socket);
    });
  });
}
