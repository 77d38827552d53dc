// Leader election on a coordination.k8s.io Lease, with client-go's rules: a lease is free when its
// holder is empty or when its record has not changed for leaseDuration *as observed locally*
// (so clocks need not agree); updates carry the resourceVersion, so two candidates cannot both
// win; a leader that cannot renew within renewDeadline (< leaseDuration) stops leading before
// anyone else may start. On shutdown the leader empties the holder so a successor need not wait.
import { setTimeout as sleep } from "node:timers/promises";
import {
  collectionPath,
  core,
  isAlreadyExists,
  isConflict,
  isNotFound,
  type KubeClient,
  objectPath,
} from "../kube/client.ts";
import type { Lease } from "../kube/types.ts";
import { describeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { microTime } from "./events.ts";

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading: () => void;
  /** Awaited on shutdown before the lease is released, so that no successor overlaps. */
  onStoppedLeading: () => void | Promise<void>;
  fieldManager: string;
}

export class LeaderElector {
  private readonly o: LeaderElectionOptions;
  private readonly abort = new AbortController();
  private observedRecord = "";
  private observedAt = 0;
  private lastRenew = 0;
  private loop: Promise<void> | undefined;
  leading = false;

  constructor(options: LeaderElectionOptions) {
    this.o = options;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader releases the lease first. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      await this.o.onStoppedLeading();
      await this.release();
    }
  }

  private async run(): Promise<void> {
    const { log, retryPeriodMs, renewDeadlineMs } = this.o;
    while (!this.abort.signal.aborted) {
      const ok = await this.tryAcquireOrRenew().catch((err: unknown) => {
        log.warn("lease update failed", { lease: this.o.name, error: describeError(err) });
        return false;
      });
      const now = Date.now();
      if (ok) this.lastRenew = now;
      if (ok && !this.leading) {
        this.leading = true;
        log.info("became the leader", { lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity });
        this.o.onStartedLeading();
      } else if (!ok && this.leading && now - this.lastRenew >= renewDeadlineMs) {
        this.leading = false;
        log.warn("lost the lease: could not renew it in time; stopped reconciling", { lease: this.o.name });
        void this.o.onStoppedLeading();
      }
      // Candidates spread their attempts (client-go's jitter 1.2) so they do not collide.
      const wait = this.leading ? retryPeriodMs : retryPeriodMs * (1 + Math.random() * 0.2);
      await sleep(wait, undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
  }

  private leaseSpec(prev: Lease["spec"] | undefined, now: number): NonNullable<Lease["spec"]> {
    const mine = prev?.holderIdentity === this.o.identity;
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      acquireTime: mine && prev?.acquireTime ? prev.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name } = this.o;
    const path = objectPath(core.leases, namespace, name);
    const timeoutMs = this.o.renewDeadlineMs;
    let lease: Lease;
    try {
      lease = await client.request<Lease>("GET", path, { timeoutMs });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const fresh: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, namespace },
        spec: { ...this.leaseSpec(undefined, Date.now()), leaseTransitions: 0 },
      };
      try {
        await client.request("POST", collectionPath(core.leases, namespace), { body: fresh, timeoutMs });
      } catch (e) {
        if (isAlreadyExists(e)) return false;
        throw e;
      }
      this.observe(fresh.spec);
      return true;
    }
    const now = Date.now();
    const record = lease.spec ?? {};
    this.observe(record);
    const holder = record.holderIdentity;
    const durationMs = (record.leaseDurationSeconds ?? 0) * 1000;
    if (holder && holder !== this.o.identity && this.observedAt + durationMs > now) return false;
    const updated: Lease = { ...lease, spec: this.leaseSpec(record, now) };
    try {
      await client.request("PUT", path, { body: updated, timeoutMs, query: { fieldManager: this.o.fieldManager } });
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote first
      throw err;
    }
    this.observe(updated.spec);
    return true;
  }

  private observe(record: Lease["spec"]): void {
    const text = JSON.stringify(record ?? {});
    if (text !== this.observedRecord) {
      this.observedRecord = text;
      this.observedAt = Date.now();
    }
  }

  private async release(): Promise<void> {
    const { client, namespace, name, log } = this.o;
    const path = objectPath(core.leases, namespace, name);
    try {
      const lease = await client.request<Lease>("GET", path, { timeoutMs: 5000 });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const released: Lease = {
        ...lease,
        spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(Date.now()) },
      };
      await client.request("PUT", path, { body: released, timeoutMs: 5000 });
      log.info("released the lease", { lease: `${namespace}/${name}` });
    } catch (err) {
      log.warn("could not release the lease; a successor waits for it to expire", { error: describeError(err) });
    }
  }
}
