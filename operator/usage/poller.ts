// The leader reads each running relay's `/usage` (its metrics port, plain HTTP inside the cluster)
// every few seconds and writes the stream's traffic figures into status under its own field
// manager; it also keeps each stream's rolling-day byte count and asks the stream's reconcile to
// end it once `limits.bytesPerDay` is passed.

import { request } from "node:http";
import { Counter, type Registry } from "prom-client";
import { relayName, relayPorts } from "../../api/constants.ts";
import { isTerminal } from "../../api/devicestream.ts";
import { type DeviceStream, type DeviceStreamStatus, deviceStreamResource } from "../../api/v1alpha1.ts";
import { isNotFound, type KubeClient, objectPath } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import { controlledBy, podReady } from "../../kube/objects.ts";
import { keyOf, type Pod } from "../../kube/types.ts";
import type { Logger } from "../../runtime/log.ts";
import type { Component } from "../manager.ts";
import { accumulate } from "./cumulative.ts";
import { RollingDay } from "./rolling-day.ts";

export const usageFieldManager = "devicestreams-usage";

interface UsageReport {
  bytes?: { toDevice?: number; fromDevice?: number };
  /** Which run of the relay process counted these bytes (a relay before it: its startedAt). */
  incarnation?: string;
  startedAt?: string;
  activeConnections?: number;
  lastActivityAt?: string;
}

export interface UsageDeps {
  client: KubeClient;
  streams: Informer<DeviceStream>;
  pods: Informer<Pod>;
  registry: Registry;
  log: Logger;
  enqueue(key: string): void;
  intervalMs: number;
  /** Overrides how a relay is reached (tests); default: the Pod IP and the metrics port. */
  relayUrl?: (pod: Pod) => string | undefined;
}

function fetchJson(url: string, timeoutMs: number): Promise<UsageReport> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`${url} answered ${res.statusCode}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as UsageReport);
        } catch (err) {
          reject(err);
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${url} did not answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

const pollWidth = 256;

async function eachLimited<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

interface Tracked {
  uid: string;
  day: RollingDay;
  /** What this leader last wrote: fresher than the informer's copy of status. */
  written?: Pick<DeviceStreamStatus, "bytes" | "relayCounters">;
  exceeded?: string;
}

export class UsagePoller implements Component {
  readonly name = "usage poller";
  readonly leaderOnly = true;
  private readonly d: UsageDeps;
  private readonly tracked = new Map<string, Tracked>();
  private readonly bytes: Counter;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(d: UsageDeps) {
    this.d = d;
    const existing = d.registry.getSingleMetric("devicestreams_operator_relay_bytes_total");
    this.bytes =
      (existing as Counter | undefined) ??
      new Counter({
        name: "devicestreams_operator_relay_bytes_total",
        help: "Payload bytes through every relay this leader polled, by direction (to_device, from_device).",
        labelNames: ["direction"],
        registers: [d.registry],
      });
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.pollAll(), this.d.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.tracked.clear();
  }

  /** Why the stream must end now for its byte cap, if it must. */
  exceeded(key: string): string | undefined {
    return this.tracked.get(key)?.exceeded;
  }

  private async pollAll(): Promise<void> {
    if (this.running) return; // a slow round is not stacked on another
    this.running = true;
    try {
      const live = new Set<string>();
      // A few hundred at a time: ten thousand relays polled at once would hold ten thousand sockets.
      await eachLimited(this.d.streams.list(), pollWidth, async (ds) => {
        const key = keyOf(ds);
        if (isTerminal(ds.status?.phase) || ds.metadata.deletionTimestamp) return;
        live.add(key);
        const pod = this.d.pods.get(ds.metadata.namespace!, relayName(ds.metadata.name!));
        if (!pod || !controlledBy(pod, ds) || !podReady(pod)) return;
        const url =
          this.d.relayUrl?.(pod) ??
          (pod.status?.podIP ? `http://${pod.status.podIP}:${relayPorts.metrics}/usage` : undefined);
        if (!url) return;
        try {
          await this.poll(ds, await fetchJson(url, 2000));
        } catch (err) {
          this.d.log.debug("relay usage not available", { stream: key, error: (err as Error).message });
        }
      });
      for (const key of this.tracked.keys()) if (!live.has(key)) this.tracked.delete(key);
    } finally {
      this.running = false;
    }
  }

  private async poll(ds: DeviceStream, r: UsageReport): Promise<void> {
    const key = keyOf(ds);
    const now = Date.now();
    let t = this.tracked.get(key);
    if (!t || t.uid !== ds.metadata.uid) {
      t = { uid: ds.metadata.uid!, day: new RollingDay() };
      this.tracked.set(key, t);
    }
    const to = r.bytes?.toDevice ?? 0;
    const from = r.bytes?.fromDevice ?? 0;
    // status.bytes sums every relay run; a new leader carries on from status.
    const sum = accumulate(t.written ?? ds.status, {
      incarnation: r.incarnation ?? r.startedAt ?? "",
      toDevice: to,
      fromDevice: from,
    });
    this.bytes.inc({ direction: "to_device" }, sum.delta.toDevice);
    this.bytes.inc({ direction: "from_device" }, sum.delta.fromDevice);
    const today = t.day.add(to + from, now);
    const cap = ds.spec.limits.bytesPerDay;
    if (cap && today > cap && !t.exceeded) {
      t.exceeded = `the stream moved ${today} bytes within 24 hours, over its limits.bytesPerDay of ${cap}; create a new DeviceStream (with a higher limit) to continue`;
      this.d.enqueue(key);
    }
    const last = r.lastActivityAt ? new Date(r.lastActivityAt).toISOString().replace(/\.\d+Z$/, "Z") : undefined;
    const prev = ds.status;
    // Keep the later activity time: a restarted relay must not move it back.
    const lastActivityAt =
      prev?.lastActivityAt && last && Date.parse(prev.lastActivityAt) > Date.parse(last) ? prev.lastActivityAt : last;
    const status = {
      bytes: sum.bytes,
      relayCounters: sum.relayCounters,
      activeConnections: r.activeConnections ?? 0,
      ...(lastActivityAt ? { lastActivityAt } : {}),
    };
    if (
      prev?.bytes?.toDevice === sum.bytes.toDevice &&
      prev?.bytes?.fromDevice === sum.bytes.fromDevice &&
      prev?.relayCounters?.incarnation === sum.relayCounters.incarnation &&
      prev?.activeConnections === status.activeConnections &&
      prev?.lastActivityAt === lastActivityAt
    ) {
      t.written = { bytes: sum.bytes, relayCounters: sum.relayCounters };
      return;
    }
    const body = {
      apiVersion: ds.apiVersion,
      kind: ds.kind,
      metadata: { name: ds.metadata.name, namespace: ds.metadata.namespace, uid: ds.metadata.uid },
      status,
    };
    try {
      await this.d.client.apply(
        objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!, "status"),
        body,
        usageFieldManager,
      );
      t.written = { bytes: sum.bytes, relayCounters: sum.relayCounters };
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
