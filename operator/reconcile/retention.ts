// Ended streams are deleted after a retention time, as Jobs are after ttlSecondsAfterFinished:
// spec.ttlSecondsAfterFinished when set (0: at once), else the operator's
// --stream-ttl-after-finished (0: kept until someone deletes them). Their record stays on the
// Device (history.ts, written by the finalizer).
import { isTerminal } from "../../api/devicestream.ts";
import type { DeviceStream } from "../../api/v1alpha1.ts";

/** When `ds` is to be deleted (ms since the epoch), or undefined: not ended, or kept. */
export function deleteAt(ds: DeviceStream, defaultTtlMs: number): number | undefined {
  if (!isTerminal(ds.status?.phase)) return undefined;
  const ended = Date.parse(ds.status?.endedAt ?? "");
  if (!Number.isFinite(ended)) return undefined;
  const ttl = ds.spec.ttlSecondsAfterFinished;
  if (ttl === undefined || ttl === null) return defaultTtlMs > 0 ? ended + defaultTtlMs : undefined;
  return ended + ttl * 1000;
}
