// Which streams a device's session should carry, and what changed since the last look. Pure
// bookkeeping (no I/O) so that "offer once, re-offer on reconnect, withdraw when it ends" is
// unit-tested apart from gRPC and the API server.

import { conditionTypes, relayName, relayPorts } from "../../api/constants.ts";
import { condition, expiresAt, isTerminal, reasons } from "../../api/devicestream.ts";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { controlledBy } from "../../kube/objects.ts";
import { keyOf, type Pod } from "../../kube/types.ts";

export type OfferState = "offered" | "accepted" | "refused" | "connected";

/** A stream the device may be offered now: running, relay ready, not refused already. */
export function offerable(ds: DeviceStream, now: number): boolean {
  if (ds.metadata.deletionTimestamp || isTerminal(ds.status?.phase)) return false;
  if (now >= expiresAt(ds)) return false;
  if (condition(ds.status, conditionTypes.relayReady)?.status !== "True") return false;
  return condition(ds.status, conditionTypes.deviceAccepted)?.reason !== reasons.refused;
}

/**
 * Whether a session of this Device (UID, enrolled key) may carry the stream: a stream another
 * Device (an earlier one of the same name, or the same one under a replaced key) accepted is
 * never offered again; the reconciler ends it (operator/reconcile/device-revocation.ts).
 */
export function forDevice(ds: DeviceStream, id: { uid: string; publicKeySha256: string }): boolean {
  const by = ds.status?.device;
  return !by?.uid || (by.uid === id.uid && by.publicKeySHA256 === id.publicKeySha256);
}

/**
 * Where the device should dial the relay. A LoadBalancer's address when there is one; else the
 * relay Pod's IP (reachable from devices on a routed pod network, and from the test bed's
 * loopback stand-in kubelet); else the in-cluster Service name. The certificate is checked
 * against `status.relay.tlsServerName` whichever address is dialled. A Pod of the relay's name
 * that this stream does not control (anyone who may create Pods in the namespace could make one)
 * is never dialled: the device would hand its destination token to it.
 */
export function relayAddress(ds: DeviceStream, pod: Pod | undefined): string | undefined {
  const relay = ds.status?.relay;
  if (relay?.externalEndpoint) return relay.externalEndpoint;
  const ip = pod && controlledBy(pod, ds) ? pod.status?.podIP : undefined;
  if (ip) return `${ip.includes(":") ? `[${ip}]` : ip}:${relayPorts.grpc}`;
  return relay?.endpoint;
}

export function relayPodName(ds: DeviceStream): string {
  return relayName(ds.metadata.name!);
}

interface Entry {
  uid: string;
  address: string;
  state: OfferState;
}

export interface OfferChanges {
  offer: DeviceStream[];
  withdraw: Array<{ stream: string; reason: string }>;
}

/** One session's offers, keyed by stream "namespace/name". A new session starts empty: re-offer. */
export class OfferBook {
  private readonly entries = new Map<string, Entry>();

  /**
   * `candidates`: every stream of this device now; `address`: where its relay is now. Returns
   * what to send. A relay that moved (its Pod was replaced) is offered again with the new address.
   */
  sync(candidates: DeviceStream[], now: number, address: (ds: DeviceStream) => string | undefined): OfferChanges {
    const out: OfferChanges = { offer: [], withdraw: [] };
    const seen = new Set<string>();
    for (const ds of candidates) {
      const key = keyOf(ds);
      const entry = this.entries.get(key);
      if (!offerable(ds, now)) continue;
      const where = address(ds);
      if (!where) continue;
      seen.add(key);
      if (entry && entry.uid === ds.metadata.uid && entry.address === where) continue;
      this.entries.set(key, { uid: ds.metadata.uid!, address: where, state: "offered" });
      out.offer.push(ds);
    }
    for (const [key, entry] of this.entries) {
      if (seen.has(key)) continue;
      this.entries.delete(key);
      // A refusal was the device's own answer: there is nothing on its side to withdraw.
      if (entry.state !== "refused") out.withdraw.push({ stream: key, reason: "the stream ended or was deleted" });
    }
    return out;
  }

  /** Records the agent's answer; false when the stream is not (or no longer) on offer. */
  update(stream: string, state: OfferState): boolean {
    const entry = this.entries.get(stream);
    if (!entry) return false;
    entry.state = state;
    return true;
  }

  state(stream: string): OfferState | undefined {
    return this.entries.get(stream)?.state;
  }

  address(stream: string): string | undefined {
    return this.entries.get(stream)?.address;
  }

  get size(): number {
    return this.entries.size;
  }
}
