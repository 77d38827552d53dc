// The status this leader wrote that its cache does not show yet, per stream UID (as the usage
// poller keeps what it wrote). A reconcile that runs before its own write's watch event arrives
// (woken by the finalizer patch or the relay Pod's creation) would otherwise write the same status
// again, record the same Event again, and send a DeviceAccepted patch guarded by a resourceVersion
// that is already stale (422): three wasted requests per stream at scale.
import type { DeviceStreamStatus } from "../../api/v1alpha1.ts";
import { type OwnedStatus, sameStatus } from "./status.ts";

/** Longer than a watch event takes, short enough that a write lost some other way is made again. */
const ttlMs = 30_000;

export class WrittenStatus {
  private readonly written = new Map<string, { status: OwnedStatus; at: number }>();

  /** What we wrote for `uid` while `cached` (the cache's status) does not show it yet. */
  lagging(uid: string, cached: DeviceStreamStatus | undefined, now: number): OwnedStatus | undefined {
    const w = this.written.get(uid);
    if (!w) return undefined;
    if (now - w.at > ttlMs || sameStatus(cached, w.status)) {
      this.written.delete(uid);
      return undefined;
    }
    return w.status;
  }

  record(uid: string, status: OwnedStatus, now: number): void {
    this.written.set(uid, { status, at: now });
    // Streams deleted before their write showed leave entries behind: sweep them now and then.
    if (this.written.size > 1000) {
      for (const [k, w] of this.written) if (now - w.at > ttlMs) this.written.delete(k);
    }
  }

  clear(): void {
    this.written.clear();
  }
}
