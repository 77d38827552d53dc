// Per-stream and certificate metrics, computed from the caches when Prometheus scrapes (as
// kube-state-metrics does for Pods). These are the only operator metrics whose labels name objects
// (namespace, devicestream, device): they are bounded by the live streams (ended streams are left
// out, and the operator's --max-streams caps those), and only the leader exports them, so two
// replicas do not double the series. A dashboard picks one stream's phase and bytes out by label.
import { Counter, Gauge, type Registry } from "prom-client";
import { isTerminal } from "../api/devicestream.ts";
import type { Device, DeviceStream } from "../api/v1alpha1.ts";

export interface StreamMetricsSource {
  streams(): DeviceStream[];
  device(namespace: string, name: string): Device | undefined;
  isLeader(): boolean;
  /** notAfter of each certificate this replica holds (ca, hub_serving), when known. */
  certificates(): Array<{ certificate: string; notAfter: Date }>;
}

/** Label names of the per-object families: metrics.test.ts allows them only here. */
export const streamLabelNames = ["namespace", "devicestream", "device"] as const;

export function streamMetrics(registry: Registry, src: StreamMetricsSource) {
  const registers = [registry];
  const live = () => (src.isLeader() ? src.streams().filter((s) => !isTerminal(s.status?.phase)) : []);
  const ids = (s: DeviceStream) => ({
    namespace: s.metadata.namespace!,
    devicestream: s.metadata.name!,
    device: s.spec.device,
  });
  return {
    phase: new Gauge({
      name: "devicestreams_operator_stream_phase",
      help: "1 for each live DeviceStream (not Expired or Failed), labelled with its phase (empty: not yet seen). Leader only.",
      labelNames: [...streamLabelNames, "phase"] as const,
      registers,
      collect() {
        this.reset();
        for (const s of live()) this.set({ ...ids(s), phase: s.status?.phase ?? "" }, 1);
      },
    }),
    // A counter: status.bytes only grows (summed over every relay run, operator/usage/cumulative.ts).
    bytes: new Counter({
      name: "devicestreams_operator_stream_bytes_total",
      help: "status.bytes of each live DeviceStream, by direction (to_device, from_device). Leader only.",
      labelNames: [...streamLabelNames, "direction"] as const,
      registers,
      collect() {
        this.reset();
        for (const s of live()) {
          this.inc({ ...ids(s), direction: "to_device" }, s.status?.bytes?.toDevice ?? 0);
          this.inc({ ...ids(s), direction: "from_device" }, s.status?.bytes?.fromDevice ?? 0);
        }
      },
    }),
    deviceConnected: new Gauge({
      name: "devicestreams_operator_stream_device_connected",
      help: "For each live DeviceStream: 1 while its Device's agent holds a hub session (status.connected), else 0. Leader only.",
      labelNames: streamLabelNames,
      registers,
      collect() {
        this.reset();
        for (const s of live()) {
          const d = src.device(s.metadata.namespace!, s.spec.device);
          this.set(ids(s), d?.status?.connected ? 1 : 0);
        }
      },
    }),
    certificateExpiry: new Gauge({
      name: "devicestreams_operator_certificate_expiry_timestamp_seconds",
      help: "When a certificate this replica holds stops being valid (notAfter), by certificate (ca, hub_serving).",
      labelNames: ["certificate"] as const,
      registers,
      collect() {
        this.reset();
        for (const c of src.certificates()) this.set({ certificate: c.certificate }, c.notAfter.getTime() / 1000);
      },
    }),
  };
}
