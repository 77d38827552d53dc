// Kubernetes Events (events.k8s.io/v1) for every transition of a stream: the audit trail a
// platform team reads with `kubectl events`. Recording never fails a reconcile; a lost Event is
// logged. Notes come from condition messages, which never carry credentials.
import { randomBytes } from "node:crypto";
import { reportingController } from "../api/constants.ts";
import { collectionPath, core, type KubeClient } from "../kube/client.ts";
import type { KubeObject } from "../kube/types.ts";
import { describeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";

export type EventType = "Normal" | "Warning";

/** MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** Events being sent at once, and waiting to be (as client-go's broadcaster, 1000; more are dropped). */
const maxInFlight = 8;
const maxQueued = 1000;

export class EventRecorder {
  private readonly queue: Array<() => Promise<void>> = [];
  private inFlight = 0;
  private dropped = 0;
  private readonly client: KubeClient;
  private readonly instance: string;
  private readonly log: Logger;
  private readonly onRecorded?: (type: EventType, reason: string) => void;

  constructor(
    client: KubeClient,
    instance: string,
    log: Logger,
    onRecorded?: (type: EventType, reason: string) => void,
  ) {
    this.client = client;
    this.instance = instance.slice(0, 128);
    this.log = log;
    this.onRecorded = onRecorded;
  }

  /** Fire and forget. `action` says what the operator did, `reason` why. */
  record(regarding: KubeObject, type: EventType, reason: string, action: string, note: string): void {
    const m = regarding.metadata;
    const now = Date.now();
    const event = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: `${m.name}.${now.toString(16)}${randomBytes(3).toString("hex")}`, namespace: m.namespace },
      eventTime: microTime(now),
      reportingController,
      reportingInstance: this.instance,
      action,
      reason,
      type,
      note: note.slice(0, 1000),
      regarding: {
        apiVersion: regarding.apiVersion,
        kind: regarding.kind,
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resourceVersion: m.resourceVersion,
      },
    };
    this.onRecorded?.(type, reason);
    // Bounded: thousands of streams changing at once must not hold thousands of requests (and
    // their bodies) in memory behind the client's sockets, nor take them from reconciles.
    if (this.queue.length >= maxQueued) {
      if (this.dropped++ === 0) this.log.warn("too many Events waiting to be sent; dropping some", { maxQueued });
      return;
    }
    this.queue.push(() =>
      this.client
        .request("POST", collectionPath(core.events, m.namespace), { body: event })
        .then(() => undefined)
        .catch((err: unknown) => {
          this.log.warn("could not record an Event", {
            object: `${m.namespace}/${m.name}`,
            reason,
            error: describeError(err),
          });
        }),
    );
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < maxInFlight) {
      const send = this.queue.shift();
      if (!send) {
        if (this.dropped && this.inFlight === 0) {
          this.log.warn("Events were dropped while the API server was slow", { dropped: this.dropped });
          this.dropped = 0;
        }
        return;
      }
      this.inFlight++;
      void send().finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }
}
