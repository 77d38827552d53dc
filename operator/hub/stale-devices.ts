// A replica killed without a goodbye leaves its devices marked connected. The leader sweeps:
// a Device whose lastSeen is older than three heartbeat write periods has no live session on any
// replica (holders refresh lastSeen every 30 s), so it is marked disconnected.
import type { Device } from "../../api/v1alpha1.ts";
import { hubConditionType } from "./reports.ts";

export const staleAfterMs = 90_000;

export function staleDevices(devices: Device[], now: number, afterMs = staleAfterMs): Device[] {
  return devices.filter((d) => {
    if (!d.status?.connected) return false;
    const seen = Date.parse(d.status.lastSeen ?? "");
    return !Number.isFinite(seen) || now - seen > afterMs;
  });
}

/** The replica named in the Device's Connected condition, for the message. */
export function holderOf(device: Device): string {
  const c = device.status?.conditions?.find((x) => x.type === hubConditionType);
  return /replica (\S+)$/.exec(c?.message ?? "")?.[1] ?? "unknown";
}
