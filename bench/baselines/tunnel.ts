// Our path: client → relay → agent as three processes, TLS 1.3 on both gRPC hops, one stream
// whose agent allows the bench target (test/helpers/dataplane.ts starts it as the tests do).
import { startDataPlane } from "../../test/helpers/dataplane.ts";
import type { BenchPath } from "./path.ts";

export async function tunnel(targetPort: number): Promise<BenchPath> {
  const plane = await startDataPlane({
    service: "target",
    allow: [`target=127.0.0.1:${targetPort}`],
  });
  return {
    name: "tunnel",
    port: plane.client.port,
    pids: () => plane.processes().map((p) => p.pid),
    rss: () => ({
      relay: plane.relay.process.rssKiB(),
      agent: plane.agent.process.rssKiB(),
      client: plane.client.process.rssKiB(),
    }),
    detail: "devicestreams connect → relay → agent, gRPC over TLS 1.3 on both hops",
    stop: () => plane.stop(),
  };
}
