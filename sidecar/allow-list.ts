// The device's own say over what the cloud may reach: service names mapped to a local host and its
// ports. Nothing outside this map is ever dialled, whatever a relay or hub asks.
import { readFileSync } from "node:fs";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import { type PortSet, parsePortSet, portSetText } from "./port-set.ts";

export interface Target {
  host: string;
  port: number;
}

/** One allow-listed service: a host and one port, or a set of ports (`21,30000-30100`). */
export interface AllowedService {
  host: string;
  ports: PortSet;
}

const serviceName = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export type Resolved = { ok: true; target: Target } | { ok: false; error: DeviceStreamsError };

export class AllowList {
  private readonly entries: Map<string, AllowedService>;

  constructor(entries: Record<string, string>) {
    this.entries = new Map();
    for (const [name, address] of Object.entries(entries)) {
      if (!serviceName.test(name)) {
        throw new DeviceStreamsError(
          "DS_CONFIG",
          `allow-list service name "${name}" must be lowercase letters, digits and '-', up to 63 characters`,
        );
      }
      this.entries.set(name, parseEntry(name, address));
    }
  }

  /** From `--allow name=host:ports` entries and an optional JSON file `{"services": {...}}`. */
  static from(flags: readonly string[], file: string | undefined): AllowList {
    const entries: Record<string, string> = {};
    if (file) {
      let parsed: { services?: Record<string, string> };
      try {
        parsed = JSON.parse(readFileSync(file, "utf8"));
      } catch (err) {
        throw new DeviceStreamsError("DS_CONFIG", `cannot read the allow-list file ${file}: ${(err as Error).message}`);
      }
      Object.assign(entries, parsed.services ?? {});
    }
    let last: string | undefined;
    for (const item of flags) {
      // --allow is a comma list, so `ftp=127.0.0.1:21,30000-30100` arrives as two items: a bare
      // port or range continues the entry before it.
      if (last !== undefined && /^\d+(-\d+)?$/.test(item)) {
        entries[last] += `,${item}`;
        continue;
      }
      const eq = item.indexOf("=");
      if (eq <= 0) throw new DeviceStreamsError("DS_CONFIG", `--allow "${item}" must look like ssh=127.0.0.1:22`);
      last = item.slice(0, eq);
      entries[last] = item.slice(eq + 1);
    }
    return new AllowList(entries);
  }

  lookup(service: string): AllowedService | undefined {
    return this.entries.get(service);
  }

  /**
   * Where a connection to `service` asking for `port` goes. A service of one port ignores the
   * port asked for (a browser asks for 80 whatever the device's web server listens on); one of
   * several ports dials the port asked for if it has it, and its first port for 0.
   */
  resolve(service: string, port: number): Resolved {
    const entry = this.entries.get(service);
    if (!entry) {
      return {
        ok: false,
        error: new DeviceStreamsError(
          "DS_SERVICE_NOT_ALLOWED",
          `service "${service}" is not in this device's allow-list (it has: ${this.services.join(", ") || "nothing"})`,
        ),
      };
    }
    const { ports } = entry;
    const single = ports.length === 1 && ports[0]!.first === ports[0]!.last;
    if (single || port === 0) return { ok: true, target: { host: entry.host, port: ports[0]!.first } };
    if (ports.some((r) => port >= r.first && port <= r.last)) return { ok: true, target: { host: entry.host, port } };
    return {
      ok: false,
      error: new DeviceStreamsError(
        "DS_PORT_OUT_OF_RANGE",
        `service "${service}" has ports ${portSetText(ports)} on this device, not ${port}`,
      ),
    };
  }

  get services(): string[] {
    return [...this.entries.keys()].sort();
  }
}

function parseEntry(name: string, address: string): AllowedService {
  const colon = address.lastIndexOf(":");
  const fail = (why: string) => new DeviceStreamsError("DS_CONFIG", `allow-list entry ${name}: ${why}`);
  if (colon < 0) throw fail(`"${address}" is not an address: write host:port, for example 127.0.0.1:22`);
  let ports: PortSet;
  try {
    ports = parsePortSet(address.slice(colon + 1));
  } catch (err) {
    throw fail((err as Error).message);
  }
  let host: string;
  try {
    host = splitHostPort(`${address.slice(0, colon)}:${ports[0]!.first}`).host;
  } catch (err) {
    throw fail((err as Error).message);
  }
  return { host, ports };
}
