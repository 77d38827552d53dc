// What the hub writes: Device status (connected, lastSeen, agentVersion, services) and each
// stream's DeviceAccepted condition and connectedAt, by server-side apply under the hub's own
// field manager, so the operator's fields are never touched; plus an Event per step.

import { conditionTypes, hubFieldManager } from "../../api/constants.ts";
import { condition, reasons } from "../../api/devicestream.ts";
import {
  type AcceptingDevice,
  type Condition,
  type Device,
  type DeviceStream,
  deviceResource,
  deviceStreamResource,
} from "../../api/v1alpha1.ts";
import { isNotFound, type KubeClient, objectPath } from "../../kube/client.ts";
import type { PeerCode } from "../../runtime/error-codes.ts";
import { errorDetail } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { printable } from "../../runtime/printable.ts";
import type { EventRecorder } from "../events.ts";

const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

export const hubConditionType = "Connected";

export interface DeviceReport {
  connected: boolean;
  lastSeen: number;
  agentVersion?: string;
  services?: string[];
  /** The replica holding the session; kept in the condition so that others do not mark it lost. */
  replica: string;
  /** Why the session is gone, when not simply ended on `replica`. */
  lostReason?: string;
}

export class HubReports {
  private readonly client: KubeClient;
  private readonly events: EventRecorder;
  private readonly log: Logger;

  constructor(client: KubeClient, events: EventRecorder, log: Logger) {
    this.client = client;
    this.events = events;
    this.log = log;
  }

  async device(device: Device, r: DeviceReport): Promise<void> {
    const old = device.status?.conditions?.find((c) => c.type === hubConditionType);
    const status = r.connected ? "True" : "False";
    const lost = r.lostReason ?? `the agent's control session with hub replica ${r.replica} ended`;
    const cond: Condition = {
      type: hubConditionType,
      status,
      reason: r.connected ? "SessionOpen" : "SessionLost",
      message: r.connected ? `the agent holds a control session with hub replica ${r.replica}` : lost,
      lastTransitionTime: old?.status === status ? old.lastTransitionTime : rfc3339(Date.now()),
      observedGeneration: device.metadata.generation ?? 0,
    };
    const body: Record<string, unknown> = {
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "Device",
      metadata: { name: device.metadata.name, namespace: device.metadata.namespace, uid: device.metadata.uid },
      status: {
        connected: r.connected,
        lastSeen: rfc3339(r.lastSeen),
        ...(r.agentVersion ? { agentVersion: r.agentVersion.slice(0, 64) } : {}),
        ...(r.services ? { services: r.services.map((name) => ({ name })) } : {}),
        conditions: [cond],
      },
    };
    await this.apply(
      objectPath({ ...deviceResource }, device.metadata.namespace!, device.metadata.name!, "status"),
      body,
    );
  }

  /** True when the Device's status names another replica as the session holder. */
  static heldElsewhere(device: Device | undefined, replica: string): boolean {
    const c = device?.status?.conditions?.find((x) => x.type === hubConditionType);
    return !!c && c.status === "True" && !c.message.endsWith(` ${replica}`);
  }

  /** `by`: the Device (UID and enrolled key) whose session accepted it; the reconciler ends the stream when that changes. */
  async accepted(ds: DeviceStream, by: AcceptingDevice): Promise<void> {
    await this.stream(ds, ["True", reasons.accepted, `device "${ds.spec.device}" accepted the stream`], undefined, by);
    this.events.record(ds, "Normal", "Accepted", "Offer", `device "${ds.spec.device}" accepted the stream`);
  }

  async refused(ds: DeviceStream, code: PeerCode, message: string): Promise<void> {
    const text = errorDetail(code, printable(message));
    await this.stream(ds, ["False", reasons.refused, text]);
    this.events.record(ds, "Warning", "Refused", "Offer", `device "${ds.spec.device}" refused the stream: ${text}`);
  }

  offered(ds: DeviceStream): void {
    this.events.record(ds, "Normal", "Offered", "Offer", `offered the stream to device "${ds.spec.device}"`);
  }

  async connected(ds: DeviceStream, by: AcceptingDevice): Promise<void> {
    // `by` again: the cache may not show the accepting apply yet, and an apply without it would drop it.
    await this.stream(ds, undefined, Date.now(), by);
    this.events.record(ds, "Normal", "Connected", "Attach", `device "${ds.spec.device}" attached to the relay`);
  }

  closed(ds: DeviceStream, reason: string): void {
    this.events.record(ds, "Normal", "Closed", "Attach", `device "${ds.spec.device}" left the relay: ${reason}`);
  }

  /** Applies the hub's whole intent for the stream: its DeviceAccepted condition and connectedAt. */
  private async stream(
    ds: DeviceStream,
    accepted: [Condition["status"], string, string] | undefined,
    connectedAt?: number,
    by?: AcceptingDevice,
  ): Promise<void> {
    const old = condition(ds.status, conditionTypes.deviceAccepted);
    let cond: Condition | undefined;
    if (accepted) {
      const [status, reason, message] = accepted;
      cond = {
        type: conditionTypes.deviceAccepted,
        status,
        reason,
        message,
        lastTransitionTime: old?.status === status ? old.lastTransitionTime : rfc3339(Date.now()),
        observedGeneration: ds.metadata.generation ?? 0,
      };
    } else if (old?.status === "True") {
      cond = old; // keep owning what we said before: an apply without it would drop it
    }
    const connected = ds.status?.connectedAt ?? (connectedAt ? rfc3339(connectedAt) : undefined);
    const status: Record<string, unknown> = {};
    if (cond) status.conditions = [cond];
    if (connected) status.connectedAt = connected;
    // Who accepted it is kept as first recorded: a stream belongs to the Device that took it.
    const device = ds.status?.device?.uid ? ds.status.device : by;
    if (device) status.device = device;
    const body = {
      apiVersion: ds.apiVersion,
      kind: ds.kind,
      metadata: { name: ds.metadata.name, namespace: ds.metadata.namespace, uid: ds.metadata.uid },
      status,
    };
    await this.apply(
      objectPath({ ...deviceStreamResource }, ds.metadata.namespace!, ds.metadata.name!, "status"),
      body,
    );
  }

  private async apply(path: string, body: unknown): Promise<void> {
    try {
      await this.client.apply(path, body, hubFieldManager);
    } catch (err) {
      if (isNotFound(err)) return; // deleted meanwhile
      this.log.warn("hub status write failed", { path, error: (err as Error).message });
      throw err;
    }
  }
}
