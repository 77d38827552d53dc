// A replica killed without a goodbye leaves its devices marked connected. A Device whose lastSeen
// is older than three heartbeat write periods has no live session on any replica (holders
// refresh lastSeen every 30 s), so the leader's Device reconciler marks it disconnected.
import type { Device } from "../../api/v1alpha1.ts";
import { hubConditionType } from "../hub/reports.ts";

export const staleAfterMs = 90_000;

/** When a connected Device turns stale (at once if it never reported lastSeen); undefined when not connected. */
export function staleAt(device: Device, afterMs = staleAfterMs): number | undefined {
  if (!device.status?.connected) return undefined;
  const seen = Date.parse(device.status.lastSeen ?? "");
  return Number.isFinite(seen) ? seen + afterMs + 1 : 0;
}

export function isStale(device: Device, now: number, afterMs = staleAfterMs): boolean {
  const at = staleAt(device, afterMs);
  return at !== undefined && now >= at;
}

/** The replica named in the Device's Connected condition, for the message. */
export function holderOf(device: Device): string {
  const c = device.status?.conditions?.find((x) => x.type === hubConditionType);
  return /replica (\S+)$/.exec(c?.message ?? "")?.[1] ?? "unknown";
}
