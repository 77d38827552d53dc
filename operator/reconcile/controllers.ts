// The two reconcilers as leader-only controllers: which cache events queue which key, and what a
// new leader does before the workers start. Both are keyed by namespace/name.
import { relayName } from "../../api/constants.ts";
import { isTerminal } from "../../api/devicestream.ts";
import { deviceStreamResource } from "../../api/v1alpha1.ts";
import { type KubeObject, keyOf } from "../../kube/types.ts";
import type { Logger } from "../../runtime/log.ts";
import type { OperatorCA } from "../ca.ts";
import { byDevice, type Caches } from "../caches.ts";
import { Controller } from "../controller.ts";
import type { OperatorMetrics } from "../metrics.ts";
import type { ReconcileContext } from "./context.ts";
import { type DeviceContext, reconcileDevice } from "./device.ts";
import { reconcileStream } from "./stream.ts";

export interface ControllerSettings {
  workers: number;
  resyncPeriodMs: number;
  metrics: OperatorMetrics;
  log: Logger;
}

/** The DeviceStream that controls `obj`, as a queue key. */
function ownerKey(obj: KubeObject): string | undefined {
  const ref = obj.metadata.ownerReferences?.find((r) => r.controller && r.kind === deviceStreamResource.kind);
  return ref ? `${obj.metadata.namespace}/${ref.name}` : undefined;
}

export function streamController(ctx: ReconcileContext, caches: Caches, ca: OperatorCA, s: ControllerSettings) {
  const controller = new Controller({
    ...s,
    name: "devicestream",
    reconcile: (key) => reconcileStream(ctx, key),
    keys: () => ctx.streams.list().map(keyOf),
    prepare: async (signal) => {
      await caches.synced(signal);
      if (!(await ca.loaded(signal))) return;
      // Streams that already run keep their slot, whatever the caps say now.
      for (const st of ctx.streams.list()) {
        if (isTerminal(st.status?.phase) || st.metadata.deletionTimestamp) continue;
        if (ctx.pods.get(st.metadata.namespace!, relayName(st.metadata.name!))) {
          ctx.capacity.seed(keyOf(st), st.metadata.namespace!);
        }
      }
    },
    cleanup: () => {
      ctx.capacity.clear();
      ctx.expectedPods.clear();
      ctx.endings.clear();
      ctx.writtenStatus.clear();
      ctx.finalized.clear();
    },
  });
  ctx.streams.on((_event, st) => controller.enqueue(keyOf(st)));
  ctx.devices.on((_event, device) => {
    for (const st of ctx.streams.byIndex(byDevice, keyOf(device))) controller.enqueue(keyOf(st));
  });
  ctx.pods.on((event, pod) => {
    const key = ownerKey(pod);
    if (!key) return;
    if (event === "add") ctx.expectedPods.delete(key);
    controller.enqueue(key);
  });
  for (const owned of [ctx.services, ctx.gatewayApi?.routes]) {
    owned?.on((_event, obj) => {
      const key = ownerKey(obj);
      if (key) controller.enqueue(key);
    });
  }
  return controller;
}

export function deviceController(ctx: DeviceContext, caches: Caches, ca: OperatorCA, s: ControllerSettings) {
  const controller = new Controller({
    ...s,
    name: "device",
    reconcile: (key) => reconcileDevice(ctx, key),
    keys: () => ctx.devices.list().map(keyOf),
    prepare: async (signal) => {
      await caches.synced(signal);
      await ca.loaded(signal);
    },
  });
  ctx.devices.on((_event, device) => controller.enqueue(keyOf(device)));
  return controller;
}
