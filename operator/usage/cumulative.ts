// A stream's byte counts over every relay process it had. A relay counts from zero when its
// process starts (a container restart, a new Pod) and says which run it is (`incarnation`);
// status keeps the last counts read from that run next to the sum, so the sum carries on across
// relay restarts and across operator leaders (a new leader starts from status). Bytes a relay
// moved after its last read and before it died are lost: at most one poll interval's worth.
import type { ByteCounts, RelayCounters } from "../../api/v1alpha1.ts";

export interface RelayReading {
  incarnation: string;
  toDevice: number;
  fromDevice: number;
}

export interface Cumulative {
  bytes: Required<ByteCounts>;
  relayCounters: Required<RelayCounters>;
  /** Bytes each way since the previous reading. */
  delta: Required<ByteCounts>;
}

/** Adds `now` (the relay's own counters) to the sum in `prev` (status, or what was last written). */
export function accumulate(
  prev: { bytes?: ByteCounts; relayCounters?: RelayCounters } | undefined,
  now: RelayReading,
): Cumulative {
  // Status written before relayCounters existed held the running relay's own counts as bytes.
  const last = prev?.relayCounters ?? (prev?.bytes ? { incarnation: now.incarnation, ...prev.bytes } : undefined);
  const sameRun = last?.incarnation === now.incarnation;
  // The same run's counters only grow; were one smaller, the run restarted under the same name.
  const since = (current: number, before = 0) => (sameRun && current >= before ? current - before : current);
  const delta = {
    toDevice: since(now.toDevice, last?.toDevice),
    fromDevice: since(now.fromDevice, last?.fromDevice),
  };
  return {
    bytes: {
      toDevice: (prev?.bytes?.toDevice ?? 0) + delta.toDevice,
      fromDevice: (prev?.bytes?.fromDevice ?? 0) + delta.fromDevice,
    },
    relayCounters: { ...now },
    delta,
  };
}
