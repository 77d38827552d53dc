// HTTP CONNECT (RFC 9110 §9.3.6) on the SOCKS listener's port, for clients that speak only an
// HTTP proxy (lftp's ftp:proxy, https_proxy): `CONNECT web:443 HTTP/1.1`, the host naming the
// service. The request head is bounded; anything but CONNECT is answered 405.

import type { ServiceChoice } from "../transport/relay-client.ts";
import { addressRefusal, type Parsed, type ProxyRefusal, serviceTarget } from "./proxy-request.ts";

/** Enough for any real CONNECT request (a few headers); more is refused with 431. */
export const maxHeadBytes = 8 * 1024;

const invalid = (http: number, message: string): ProxyRefusal => ({
  socks: 0,
  http,
  code: "DS_SOCKS_REQUEST_INVALID",
  message,
});

export function parseConnect(buf: Buffer): Parsed<ServiceChoice> {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) {
    if (buf.length >= maxHeadBytes) {
      return { kind: "refused", refusal: invalid(431, `a request head over ${maxHeadBytes} bytes`) };
    }
    return { kind: "more" };
  }
  if (end + 4 > maxHeadBytes)
    return { kind: "refused", refusal: invalid(431, `a request head over ${maxHeadBytes} bytes`) };
  const line = buf.toString("latin1", 0, buf.indexOf("\r\n"));
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(line);
  if (!m) return { kind: "refused", refusal: invalid(400, "not an HTTP/1.1 request line") };
  if (m[1] !== "CONNECT") {
    return {
      kind: "refused",
      refusal: invalid(
        405,
        `method ${m[1]}: this proxy only tunnels (CONNECT); use it as an HTTPS or SOCKS5 proxy (socks5h://), not for plain HTTP`,
      ),
    };
  }
  const target = /^(?:\[([^\]]*)\]|([^:]+)):(\d{1,5})$/.exec(m[2]!);
  const port = target ? Number(target[3]) : Number.NaN;
  if (!target || port > 65535) {
    return { kind: "refused", refusal: invalid(400, "CONNECT needs host:port, the host naming a service") };
  }
  if (target[1] !== undefined) return { kind: "refused", refusal: addressRefusal("an IPv6 address") };
  const chosen = serviceTarget(target[2]!, port);
  if ("refusal" in chosen) return { kind: "refused", refusal: chosen.refusal };
  return { kind: "done", value: chosen.choice, used: end + 4 };
}

const reasons: Record<number, string> = {
  200: "Connection established",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** A response head; a refusal carries its DS_* code and words as a plain-text body. */
export function response(status: number, refusal?: Pick<ProxyRefusal, "code" | "message">): Buffer {
  const head = `HTTP/1.1 ${status} ${reasons[status] ?? "Error"}\r\n`;
  if (!refusal) return Buffer.from(`${head}\r\n`, "latin1");
  const body = `${refusal.code}: ${refusal.message}\n`;
  return Buffer.from(
    `${head}Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Devicestreams-Error: ${refusal.code}\r\n\r\n${body}`,
  );
}
