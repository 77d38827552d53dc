// The operator's watch caches, one component on every replica (so a new leader starts warm):
// DeviceStreams and Devices everywhere, and only the operator's own Pods and Services.
import { managedSelector } from "../api/constants.ts";
import { type Device, type DeviceStream, deviceResource, deviceStreamResource } from "../api/v1alpha1.ts";
import { collectionPath, core, type KubeClient } from "../kube/client.ts";
import { Informer } from "../kube/informer.ts";
import type { KubeObject, Pod, Service } from "../kube/types.ts";
import type { Logger } from "../runtime/log.ts";
import { deviceForCache, podForCache, serviceForCache, streamForCache } from "./cache-transforms.ts";
import type { TLSRoute } from "./gateway-route.ts";
import { type Component, untilAborted } from "./manager.ts";
import type { OperatorMetrics } from "./metrics.ts";

/** Index of the streams cache: `namespace/device`. */
export const byDevice = "device";

const crdMissing = "the devicestreams.io CRDs are not installed: kubectl apply -f crds/";

export class Caches implements Component {
  readonly name = "caches";
  readonly streams: Informer<DeviceStream>;
  readonly devices: Informer<Device>;
  readonly pods: Informer<Pod>;
  readonly services: Informer<Service>;
  /** Gateway API mode with the TLSRoute CRD installed: the operator's routes. */
  readonly tlsRoutes?: Informer<TLSRoute>;
  private readonly all: Array<Pick<Informer<KubeObject>, "name" | "synced" | "start" | "stop" | "waitForSync">>;
  private readonly metrics: OperatorMetrics;

  constructor(client: KubeClient, metrics: OperatorMetrics, log: Logger, tlsRoutesPath?: string) {
    this.metrics = metrics;
    const informer = <T extends KubeObject>(
      name: string,
      path: string,
      labelSelector?: string,
      notFoundHint?: string,
      transform?: (obj: T) => T,
    ) =>
      new Informer<T>({
        name,
        client,
        path,
        labelSelector,
        log,
        notFoundHint,
        transform,
        onRestart: (cause) => metrics.watchRestarts.inc({ resource: name, cause }),
        onRelist: () => metrics.relists.inc({ resource: name }),
      });
    const streams = collectionPath({ ...deviceStreamResource });
    this.streams = informer("devicestreams", streams, undefined, crdMissing, streamForCache);
    // The streams of a Device, found without walking every stream (device events, hub sessions).
    this.streams.addIndex(byDevice, (ds) => `${ds.metadata.namespace}/${ds.spec.device}`);
    this.devices = informer("devices", collectionPath({ ...deviceResource }), undefined, crdMissing, deviceForCache);
    this.pods = informer("pods", collectionPath(core.pods), managedSelector, undefined, podForCache);
    this.services = informer("services", collectionPath(core.services), managedSelector, undefined, serviceForCache);
    this.all = [this.streams, this.devices, this.pods, this.services];
    if (tlsRoutesPath) {
      this.tlsRoutes = informer("tlsroutes", tlsRoutesPath, managedSelector);
      this.all.push(this.tlsRoutes);
    }
  }

  start(): void {
    for (const i of this.all) {
      this.metrics.cacheSynced.set({ resource: i.name }, 0);
      i.start();
      void i.waitForSync().then(() => this.metrics.cacheSynced.set({ resource: i.name }, 1));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((i) => i.stop()));
  }

  /** Resolves once every cache has listed, or when `signal` aborts. */
  async synced(signal: AbortSignal): Promise<void> {
    await untilAborted(Promise.all(this.all.map((i) => i.waitForSync())), signal);
  }

  /** For /readyz: empty once every cache has synced. */
  readiness(): string {
    const waiting = this.all.filter((i) => !i.synced).map((i) => i.name);
    return waiting.length ? `waiting for caches to sync: ${waiting.join(", ")}` : "";
  }
}
