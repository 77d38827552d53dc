// A loader for bench/pool-idle.ts: many idle agents in one process, each the real agent's attach
// code (sidecar/relay-session.ts) on its own relay client, so its own TLS connection and HTTP/2
// session, sending its stream's server name, as a device would. A few sessions connect at a time
// (devices arrive over time, not in one burst); reports the attached count to its parent.
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
  /** Sessions still connecting at once, at most: devices arrive over time, not in one burst. */
  maxConnecting: number;
}

// The job comes over IPC: 2,500 streams' tokens are too long for a command line (E2BIG).
const job = await new Promise<LoaderJob>((resolve) => process.once("message", (m) => resolve(m as LoaderJob)));
setLogLevel("error");
const log = createLogger("bench-agent");
const metrics = agentMetrics(createRegistry("agent"));
const allowList = new AllowList({ echo: "127.0.0.1:9" });
const sessions: RelaySession[] = [];
let attached = 0;
let connecting = 0;

for (const s of job.streams) {
  while (connecting >= job.maxConnecting) await new Promise((r) => setTimeout(r, 20));
  connecting++;
  {
    const relay = new RelayClient({
      address: job.relay,
      tls: { caPem: job.caPem },
      keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
      serverName: s.serverName,
    });
    let counted = false;
    const session = new RelaySession({
      relay,
      dialled: relayFromFlags,
      token: s.token,
      allowList,
      dialTimeoutMs: 10_000,
      metrics,
      log,
      onState: () => {
        // A first attach, or a first failure (its retries then take their own pace, backed off).
        if (!counted) connecting--;
        counted = true;
      },
    });
    session.start();
    sessions.push(session);
  }
}

// Attached now: sessions that were lost and came back count once more, so report the state itself.
// With the commonest reasons of the sessions not attached, for the benchmark's progress lines.
setInterval(() => {
  attached = sessions.filter((s) => s.state === "attached").length;
  const reasons: Record<string, number> = {};
  for (const s of sessions)
    if (s.state !== "attached" && s.lastError)
      reasons[s.lastError.slice(0, 120)] = (reasons[s.lastError.slice(0, 120)] ?? 0) + 1;
  process.send?.({ attached, of: sessions.length, reasons });
}, 2000);
process.on("disconnect", () => process.exit(0));
