// Direct TCP to the target: the floor every other path is compared with.
import type { BenchPath } from "./path.ts";

export function direct(targetPort: number): BenchPath {
  return {
    name: "direct",
    port: targetPort,
    pids: () => [],
    rss: () => ({}),
    detail: "loopback TCP, no forwarder",
    stop: async () => {},
  };
}
