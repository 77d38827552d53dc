// What a local client of the SOCKS5 / HTTP CONNECT listener asked for (client/socks-listener.ts),
// and how each refusal is answered in its protocol: the host is a service's name (an address is
// refused), the port picks within the service's range. Pure: the parsers in socks5.ts and
// http-connect.ts and the listener share it.
import type { ErrorCode } from "../runtime/error-codes.ts";
import type { ServiceChoice } from "../transport/relay-client.ts";

/** Parsing a request that arrives in pieces: more bytes needed, done (and how many bytes it took), or refused. */
export type Parsed<T> =
  | { kind: "more" }
  | { kind: "done"; value: T; used: number }
  | { kind: "refused"; refusal: ProxyRefusal };

/** SOCKS5 reply codes (RFC 1928 §6). */
export const socksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** A refusal, as both protocols say it, with the code and words for the log and the HTTP body. */
export interface ProxyRefusal {
  socks: number;
  http: number;
  code: ErrorCode | string;
  message: string;
}

const serviceName = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function addressRefusal(what: string): ProxyRefusal {
  return {
    socks: socksReply.addressTypeNotSupported,
    http: 400,
    code: "DS_SOCKS_ADDRESS_NOT_SERVICE",
    message: `${what} is an address; this listener reaches the stream's services by name: ask for the service as the host (curl --socks5-hostname, socks5h://, a browser's remote DNS)`,
  };
}

/** The service a request names as its host, or why it cannot be one. */
export function serviceTarget(host: string, port: number): { choice: ServiceChoice } | { refusal: ProxyRefusal } {
  // Host names are case-insensitive and may end with the root's dot; service names are lowercase.
  const name = host.toLowerCase().replace(/\.$/, "");
  if (ipv4.test(name) || name.includes(":")) return { refusal: addressRefusal(`"${printableHost(host)}"`) };
  if (!serviceName.test(name)) {
    return {
      refusal: {
        socks: socksReply.notAllowed,
        http: 403,
        code: "DS_SERVICE_NOT_IN_STREAM",
        message: `"${printableHost(host)}" is not a service name; the host must name one of the stream's services (e.g. ssh)`,
      },
    };
  }
  return { choice: port ? { service: name, port } : { service: name } };
}

/** A host as a client sent it, safe for a log line: printable ASCII, cut short. */
export function printableHost(host: string): string {
  const cut = host.length > 80 ? `${host.slice(0, 80)}…` : host;
  return cut.replace(/[^\x20-\x7e]/g, "?");
}

/**
 * How a failed tunnel is told to the local client, by its DS_* code: a service the stream lacks
 * is "not allowed" (403); what the device refused is "not allowed" or "refused" (502); a device
 * that is not there is "host unreachable" (503); anything else a general failure.
 */
export function tunnelRefusal(code: string, message: string): ProxyRefusal {
  const r = (socks: number, http: number): ProxyRefusal => ({ socks, http, code, message });
  switch (code) {
    case "DS_SERVICE_NOT_IN_STREAM":
    case "DS_AUTH_MISSING":
    case "DS_AUTH_INVALID":
    case "DS_AUTH_EXPIRED":
    case "DS_SOURCE_TOKEN_DISABLED":
    case "DS_USER_UNAUTHENTICATED":
    case "DS_USER_FORBIDDEN":
    case "DS_USER_TOKEN_UNSUPPORTED":
      return r(socksReply.notAllowed, 403);
    case "DS_PORT_OUT_OF_RANGE":
    case "DS_SERVICE_NOT_ALLOWED":
    case "DS_WRONG_SERVICE":
    case "DS_DEVICE_REFUSED":
      return r(socksReply.notAllowed, 502);
    case "DS_TARGET_REFUSED":
      return r(socksReply.connectionRefused, 502);
    case "DS_TARGET_UNREACHABLE":
      return r(socksReply.hostUnreachable, 502);
    case "DS_TARGET_TIMEOUT":
    case "DS_DIAL_TIMEOUT":
      return r(socksReply.hostUnreachable, 504);
    case "DS_DEVICE_NOT_ATTACHED":
    case "DS_DEVICE_DETACHED":
      return r(socksReply.hostUnreachable, 503);
    case "DS_CONNECTION_LIMIT":
    case "DS_RELAY_DRAINING":
      return r(socksReply.generalFailure, 503);
    case "DS_RELAY_UNAVAILABLE":
    case "DS_RELAY_UNREACHABLE":
      return r(socksReply.networkUnreachable, 502);
    default:
      return r(socksReply.generalFailure, 502);
  }
}
