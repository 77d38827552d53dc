// A loader for bench/pool-idle.ts: many idle agents in one process, each the real agent's attach
// code (sidecar/relay-session.ts) on its own relay client, so its own TLS connection and HTTP/2
// session, sending its stream's server name, as a device would. Attaches in batches so that the
// relay's handshake timeout is never the bottleneck; reports the attached count to its parent.
import { createRegistry } from "../../runtime/http-endpoints.ts";
import { createLogger, setLogLevel } from "../../runtime/log.ts";
import { AllowList } from "../../sidecar/allow-list.ts";
import { agentMetrics } from "../../sidecar/metrics.ts";
import { RelaySession } from "../../sidecar/relay-session.ts";
import { relayFromFlags } from "../../transport/call-error.ts";
import { RelayClient } from "../../transport/relay-client.ts";

export interface LoaderJob {
  relay: string;
  caPem: string;
  streams: Array<{ serverName: string; token: string }>;
  /** Sessions started per batch, and the pause between batches. */
  batch: number;
  pauseMs: number;
}

// The job comes over IPC: 2,500 streams' tokens are too long for a command line (E2BIG).
const job = await new Promise<LoaderJob>((resolve) => process.once("message", (m) => resolve(m as LoaderJob)));
setLogLevel("error");
const log = createLogger("bench-agent");
const metrics = agentMetrics(createRegistry("agent"));
const allowList = new AllowList({ echo: "127.0.0.1:9" });
const sessions: RelaySession[] = [];
let attached = 0;

for (let i = 0; i < job.streams.length; i += job.batch) {
  for (const s of job.streams.slice(i, i + job.batch)) {
    const relay = new RelayClient({
      address: job.relay,
      tls: { caPem: job.caPem },
      keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
      serverName: s.serverName,
    });
    const session = new RelaySession({
      relay,
      dialled: relayFromFlags,
      token: s.token,
      allowList,
      dialTimeoutMs: 10_000,
      metrics,
      log,
      onState: (state) => {
        if (state === "attached") attached++;
      },
    });
    session.start();
    sessions.push(session);
  }
  await new Promise((r) => setTimeout(r, job.pauseMs));
}

// Attached now: sessions that were lost and came back count once more, so report the state itself.
setInterval(() => {
  attached = sessions.filter((s) => s.state === "attached").length;
  process.send?.({ attached, of: sessions.length });
}, 1000);
process.on("disconnect", () => process.exit(0));
