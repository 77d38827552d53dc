// `devicestreams agent`: the edge sidecar. Dials out to the relay and serves the allow-list.
import { RelayClient } from "../proto/relay-client.ts";
import { parseDuration } from "../runtime/duration.ts";
import { createRegistry, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { parseOptions, printable, requireOption } from "../runtime/options.ts";
import { readToken } from "../runtime/secret-input.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { AllowList } from "./allow-list.ts";
import { agentMetrics } from "./metrics.ts";
import { RelaySession } from "./relay-session.ts";

export const agentOptionSpecs = {
  relay: { description: "relay address host:port" },
  token: { description: "the stream's destination token (prefer --token-file)", secret: true },
  "token-file": { description: "file holding the stream's destination token" },
  ca: { description: "CA bundle (PEM) the relay's certificate must chain to (default: system roots)" },
  "server-name": { description: "TLS name to expect from the relay, when not the address's host" },
  allow: { description: "allow-list entry name=host:port, repeatable (e.g. ssh=127.0.0.1:22)", multiple: true },
  config: { description: 'allow-list file, JSON {"services": {"ssh": "127.0.0.1:22"}}' },
  "metrics-listen": { description: "HTTP address for /metrics, /healthz, /readyz", default: "127.0.0.1:9091" },
  "dial-timeout": { description: "give up reaching a local target after", default: "10s" },
  "keepalive-time": { description: "ping a quiet relay after", default: "10s" },
  "keepalive-timeout": { description: "declare the relay dead when a ping goes unanswered for", default: "5s" },
};

export interface RunningAgent {
  session: RelaySession;
  metricsPort: number;
  stop(): Promise<void>;
}

export async function runAgent(argv: string[]): Promise<RunningAgent | undefined> {
  const summary = "Edge agent: dials out to a relay and carries its tunnelled connections to local targets.";
  const o = parseOptions("agent", summary, agentOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("agent");
  const allowList = AllowList.from(o.allow, o.config);
  const token = readToken(o.token, o["token-file"], "stream's destination token", "token");
  const relay = new RelayClient({
    address: requireOption("agent", "relay", o.relay),
    tls: { caPem: o.ca ? readPem(o.ca, "CA bundle") : undefined },
    keepalive: { timeMs: parseDuration(o["keepalive-time"]!), timeoutMs: parseDuration(o["keepalive-timeout"]!) },
    serverName: o["server-name"],
  });
  log.info("starting", { services: allowList.services.join(",") || "(none)", ...printable(agentOptionSpecs, o) });
  if (!allowList.services.length)
    log.warn("the allow-list is empty: every stream will be refused; add --allow name=host:port");

  const registry = createRegistry("agent");
  const metrics = agentMetrics(registry);
  const session = new RelaySession({
    relay,
    token,
    allowList,
    dialTimeoutMs: parseDuration(o["dial-timeout"]!),
    metrics,
    log,
  });
  session.start();
  const endpoints = await serveEndpoints(o["metrics-listen"]!, registry, () =>
    session.state === "attached"
      ? ""
      : `not attached to the relay (${session.state}${session.lastError ? `: ${session.lastError}` : ""})`,
  );
  log.info("ready", { metricsPort: endpoints.port });
  const stop = async () => {
    session.stop();
    relay.close();
    await endpoints.close();
  };
  onShutdownSignals(log, stop, stop);
  return { session, metricsPort: endpoints.port, stop };
}
