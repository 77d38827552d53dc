// Controller metrics, named as Prometheus and controller-runtime do. Labels are bounded sets
// (controller, result, phase, resource); a stream or device name is never a label value.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** `streamPhases` counts streams by phase when Prometheus scrapes. */
export function operatorMetrics(registry: Registry, streamPhases: () => Map<string, number> = () => new Map()) {
  const registers = [registry];
  return {
    reconciles: new Counter({
      name: "devicestreams_operator_reconcile_total",
      help: "Reconciles by controller and result (success, requeue, error).",
      labelNames: ["controller", "result"] as const,
      registers,
    }),
    reconcileSeconds: new Histogram({
      name: "devicestreams_operator_reconcile_duration_seconds",
      help: "Time one reconcile took.",
      labelNames: ["controller"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    queueDepth: new Gauge({
      name: "devicestreams_operator_workqueue_depth",
      help: "Keys waiting in the work queue.",
      labelNames: ["queue"] as const,
      registers,
    }),
    retries: new Counter({
      name: "devicestreams_operator_workqueue_retries_total",
      help: "Keys put back in the queue after a failed reconcile.",
      labelNames: ["queue"] as const,
      registers,
    }),
    leader: new Gauge({
      name: "devicestreams_operator_leader",
      help: "1 while this replica holds the leader lease and reconciles; 0 otherwise.",
      registers,
    }),
    cacheSynced: new Gauge({
      name: "devicestreams_operator_cache_synced",
      help: "1 once the informer of a resource has listed it completely.",
      labelNames: ["resource"] as const,
      registers,
    }),
    watchRestarts: new Counter({
      name: "devicestreams_operator_watch_restarts_total",
      help: "List/watch restarts after errors, by resource and cause.",
      labelNames: ["resource", "cause"] as const,
      registers,
    }),
    relists: new Counter({
      name: "devicestreams_operator_relists_total",
      help: "Complete lists of a resource: the first, then one per expired watch (410 Gone).",
      labelNames: ["resource"] as const,
      registers,
    }),
    relayWriteErrors: new Counter({
      name: "devicestreams_operator_relay_write_errors_total",
      help: "Writes of a relay Secret, Service or Pod the API server refused, by kind and reason (RelayInvalid, RelayForbidden, RelayAPIError).",
      labelNames: ["kind", "reason"] as const,
      registers,
    }),
    events: new Counter({
      name: "devicestreams_operator_events_total",
      help: "Kubernetes Events recorded, by type and reason.",
      labelNames: ["type", "reason"] as const,
      registers,
    }),
    streams: new Gauge({
      name: "devicestreams_operator_streams",
      help: "DeviceStreams in the cache by phase (an empty phase: not yet seen by the operator).",
      labelNames: ["phase"] as const,
      registers,
      collect() {
        this.reset();
        for (const [phase, n] of streamPhases()) this.set({ phase }, n);
      },
    }),
  };
}

export type OperatorMetrics = ReturnType<typeof operatorMetrics>;
