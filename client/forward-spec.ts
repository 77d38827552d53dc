// What one `-L` says: where to listen locally and, on a stream of several services, which service
// (and port, for a service with a range) its connections reach. `[bind:]port` alone keeps the
// stream's first service, as before streams had several.

import { DeviceStreamsError } from "../runtime/errors.ts";
import type { ServiceChoice } from "../transport/relay-client.ts";

export interface ForwardSpec {
  host: string;
  /** 0: any free port (the listener says which). */
  port: number;
  /** Unset: the stream's first service. */
  choice?: ServiceChoice;
}

const serviceName = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const digits = /^\d{1,5}$/;

function port(text: string, what: string, spec: string, min: number): number {
  const n = digits.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= 65535)) throw usage(spec, `${what} "${text}" is not a port (${min} to 65535)`);
  return n;
}

function usage(spec: string, why: string): DeviceStreamsError {
  return new DeviceStreamsError(
    "DS_USAGE",
    `-L "${spec}": ${why}; write [bind:]port or [bind:]port:service[:port], e.g. -L 2222:ssh or -L 127.0.0.1:8080:web`,
  );
}

/** Parses `2222`, `127.0.0.1:2222`, `2222:ssh`, `[::1]:2222:ssh`, `30005:ftp:30005`. */
export function parseForwardSpec(spec: string, defaultHost = "127.0.0.1"): ForwardSpec {
  let host: string | undefined;
  let rest = spec;
  if (spec.startsWith("[")) {
    const close = spec.indexOf("]");
    if (close < 0 || spec[close + 1] !== ":") throw usage(spec, "an IPv6 bind address needs [brackets]:port");
    host = spec.slice(1, close);
    rest = spec.slice(close + 2);
  }
  const parts = rest.split(":");
  if (parts.some((p) => p === "")) throw usage(spec, "an empty part");
  // A leading part that is not a port is the bind address; `2222:8080` is a port and a service
  // named 8080 only with the bind address given (127.0.0.1:2222:8080), as the old form reads it so.
  if (
    host === undefined &&
    parts.length >= 2 &&
    (!digits.test(parts[0]!) || (parts.length === 2 && digits.test(parts[1]!)))
  ) {
    host = parts.shift();
  }
  if (parts.length > 3) throw usage(spec, "too many parts (an IPv6 bind address needs [brackets])");
  const [local, service, remote] = parts as [string, string | undefined, string | undefined];
  const out: ForwardSpec = { host: host ?? defaultHost, port: port(local, "local port", spec, 0) };
  if (service === undefined) return out;
  if (!serviceName.test(service)) throw usage(spec, `"${service}" is not a service name`);
  out.choice = { service };
  if (remote !== undefined) out.choice.port = port(remote, "the service's port", spec, 1);
  return out;
}

/** `ssh` or `ftp:30005`, as `--service` names the one service of a stdio tunnel. */
export function parseServiceChoice(text: string, flag: string): ServiceChoice {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || !serviceName.test(m[1]!) || (port !== undefined && !(port >= 1 && port <= 65535))) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `${flag} "${text}" must be a service name, or NAME:PORT (e.g. ssh, ftp:30005)`,
    );
  }
  return port === undefined ? { service: m[1]! } : { service: m[1]!, port };
}

/** As a person would read it back: `127.0.0.1:2222 (service ssh)`. */
export function describeForward(f: ForwardSpec, boundPort: number): string {
  const local = f.host.includes(":") ? `[${f.host}]:${boundPort}` : `${f.host}:${boundPort}`;
  if (!f.choice) return local;
  return `${local} (service ${f.choice.service}${f.choice.port ? `, port ${f.choice.port}` : ""})`;
}
