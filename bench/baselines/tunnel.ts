// Our path: client → relay → agent as three processes, TLS 1.3 on both gRPC hops, one stream
// whose agent allows the bench target (test/helpers/dataplane.ts starts it as the tests do).
import { setTimeout as sleep } from "node:timers/promises";
import { startDataPlane } from "../../test/helpers/dataplane.ts";
import type { BenchPath } from "./path.ts";

export async function tunnel(targetPort: number): Promise<BenchPath> {
  const plane = await startDataPlane({
    service: "target",
    allow: [`target=127.0.0.1:${targetPort}`],
    // The relay caps a stream at 1,000 concurrent connections by default; the idle scenario opens 10,000.
    relayArgs: ["--max-connections", "20000"],
  });
  return {
    name: "tunnel",
    port: plane.client.port,
    pids: () => plane.processes().map((p) => p.pid),
    parts: () => ({ relay: plane.relay.process.pid, agent: plane.agent.process.pid, client: plane.client.process.pid }),
    rss: () => ({
      relay: plane.relay.process.rssKiB(),
      agent: plane.agent.process.rssKiB(),
      client: plane.client.process.rssKiB(),
    }),
    detail: "devicestreams connect → relay → agent, gRPC over TLS 1.3 on both hops",
    // SIGTERM first, so a component run with NODE_OPTIONS=--cpu-prof writes its profile on the way
    // out; SIGKILL (plane.stop) after a bounded wait in case one lingers.
    stop: async () => {
      const exited = Promise.all(plane.processes().map((p) => p.stop("SIGTERM")));
      await Promise.race([exited, sleep(5_000)]);
      await plane.stop();
    },
  };
}
