// SOCKS5 (RFC 1928) as the listener speaks it: no authentication, the CONNECT command, and a
// domain name as the address (ATYP 3), which names the service. Parsers take what has arrived so
// far and say whether it is complete; every length is bounded by the protocol (at most 262 bytes).

import type { ServiceChoice } from "../transport/relay-client.ts";
import { addressRefusal, type Parsed, type ProxyRefusal, serviceTarget, socksReply } from "./proxy-request.ts";

const version = 0x05;
const noAuthentication = 0x00;
export const noAcceptableMethods = Buffer.from([version, 0xff]);
export const methodChosen = Buffer.from([version, noAuthentication]);

const invalid = (message: string): ProxyRefusal => ({
  socks: socksReply.generalFailure,
  http: 400,
  code: "DS_SOCKS_REQUEST_INVALID",
  message,
});

/** The greeting: VER, NMETHODS, METHODS. `acceptable` is false when "no authentication" is not offered. */
export function parseGreeting(buf: Buffer): Parsed<{ acceptable: boolean }> {
  if (buf.length < 2) return { kind: "more" };
  if (buf[0] !== version) return { kind: "refused", refusal: invalid(`SOCKS version ${buf[0]} (only 5 is spoken)`) };
  const n = buf[1]!;
  if (n === 0) return { kind: "refused", refusal: invalid("a SOCKS5 greeting that offers no method") };
  if (buf.length < 2 + n) return { kind: "more" };
  return { kind: "done", value: { acceptable: buf.subarray(2, 2 + n).includes(noAuthentication) }, used: 2 + n };
}

/** The request: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT; CONNECT to a name only. */
export function parseRequest(buf: Buffer): Parsed<ServiceChoice> {
  if (buf.length < 5) return { kind: "more" };
  if (buf[0] !== version) return { kind: "refused", refusal: invalid(`SOCKS version ${buf[0]} in the request`) };
  if (buf[1] !== 0x01) {
    return {
      kind: "refused",
      refusal: {
        socks: socksReply.commandNotSupported,
        http: 405,
        code: "DS_SOCKS_REQUEST_INVALID",
        message: `SOCKS command ${buf[1]} (only CONNECT, 1, is supported: no BIND, no UDP)`,
      },
    };
  }
  const atyp = buf[3];
  if (atyp === 0x01) return { kind: "refused", refusal: addressRefusal("an IPv4 address") };
  if (atyp === 0x04) return { kind: "refused", refusal: addressRefusal("an IPv6 address") };
  if (atyp !== 0x03) {
    return {
      kind: "refused",
      refusal: { ...invalid(`SOCKS address type ${atyp}`), socks: socksReply.addressTypeNotSupported },
    };
  }
  const len = buf[4]!;
  if (len === 0) return { kind: "refused", refusal: invalid("an empty host name") };
  const end = 5 + len + 2;
  if (buf.length < end) return { kind: "more" };
  const host = buf.toString("latin1", 5, 5 + len);
  const target = serviceTarget(host, buf.readUInt16BE(5 + len));
  if ("refusal" in target) return { kind: "refused", refusal: target.refusal };
  return { kind: "done", value: target.choice, used: end };
}

/** A reply to the request; the bound address is not meaningful here, so 0.0.0.0:0. */
export function reply(code: number): Buffer {
  return Buffer.from([version, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}
