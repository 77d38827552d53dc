// The device's own say over what the cloud may reach: service names mapped to local host:port.
// Nothing outside this map is ever dialled, whatever a relay or hub asks.
import { readFileSync } from "node:fs";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";

export interface Target {
  host: string;
  port: number;
}

const serviceName = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class AllowList {
  private readonly targets: Map<string, Target>;

  constructor(entries: Record<string, string>) {
    this.targets = new Map();
    for (const [name, address] of Object.entries(entries)) {
      if (!serviceName.test(name)) {
        throw new DeviceStreamsError(
          "DS_CONFIG",
          `allow-list service name "${name}" must be lowercase letters, digits and '-', up to 63 characters`,
        );
      }
      let target: Target;
      try {
        target = splitHostPort(address);
      } catch (err) {
        throw new DeviceStreamsError("DS_CONFIG", `allow-list entry ${name}: ${(err as Error).message}`);
      }
      if (target.port === 0)
        throw new DeviceStreamsError("DS_CONFIG", `allow-list entry ${name}: port 0 is not a target`);
      this.targets.set(name, target);
    }
  }

  /** From `--allow name=host:port` entries and an optional JSON file `{"services": {...}}`. */
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
    for (const item of flags) {
      const eq = item.indexOf("=");
      if (eq <= 0) throw new DeviceStreamsError("DS_CONFIG", `--allow "${item}" must look like ssh=127.0.0.1:22`);
      entries[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return new AllowList(entries);
  }

  lookup(service: string): Target | undefined {
    return this.targets.get(service);
  }

  get services(): string[] {
    return [...this.targets.keys()].sort();
  }
}
