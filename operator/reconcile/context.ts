// What every reconcile step may use: the API client, the caches, the caps, the event recorder and
// the relay settings. Built once per operator by operator/main.ts.

import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import type { KubeClient } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import type { Pod, Service } from "../../kube/types.ts";
import type { Logger } from "../../runtime/log.ts";
import type { KeyPairPem } from "../../runtime/pki.ts";
import type { Capacity } from "../capacity.ts";
import type { EventRecorder } from "../events.ts";
import type { TLSRoute } from "../gateway-route.ts";
import type { GatewayParent } from "../options.ts";
import type { RelaySettings } from "../relay-objects.ts";
import type { RelayFailures, RelayObjectKind } from "./relay-failure.ts";
import type { Ending } from "./status.ts";
import type { WrittenStatus } from "./written-status.ts";

export interface ReconcileContext {
  client: KubeClient;
  streams: Informer<DeviceStream>;
  devices: Informer<Device>;
  pods: Informer<Pod>;
  services: Informer<Service>;
  capacity: Capacity;
  events: EventRecorder;
  relay: RelaySettings;
  /** Gateway API mode: the parent Gateway, the TLSRoute version served, its cache (absent: no CRD). */
  gatewayApi?: { parent: GatewayParent; version: string; routes?: Informer<TLSRoute> };
  /** Loaded when this replica starts leading. */
  ca: () => KeyPairPem;
  /** Relay Pods created and not yet seen in the cache, by stream key (ReplicaSet-style expectations). */
  expectedPods: Map<string, number>;
  /** Endings decided but not yet seen in the cache, by stream UID (see reconcile/stream.ts). */
  endings: Map<string, Ending>;
  /** Streams whose finalizer this leader removed, until the cache shows them gone: key to UID. */
  finalized: Map<string, string>;
  /** Status written and not yet seen in the cache, by stream UID (written-status.ts). */
  writtenStatus: WrittenStatus;
  /** The last refused write of each stream's relay, and when to try again. */
  relayFailures: RelayFailures;
  /** Counts a refused relay write (the operator's metrics). */
  onRelayWriteError?(kind: RelayObjectKind, reason: string): void;
  enqueue(key: string, afterMs?: number): void;
  now(): number;
  log: Logger;
  /** Default time from a stream's end to its deletion (--stream-ttl-after-finished); 0 or unset: kept. */
  streamTtlAfterFinishedMs?: number;
  /** The leader's usage poller: why a stream passed its bytes-per-day cap, if it did. */
  usage?: { exceeded(key: string): string | undefined };
}
