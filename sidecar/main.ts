// `devicestreams agent`: the edge sidecar. Static mode dials one relay (--relay, --token-file);
// hub mode (--hub) enrols the device, holds a control session with the hub and serves the
// streams the hub offers. Either way only the allow-list is ever dialled.

import { createRegistry, serveEndpoints } from "../runtime/http-endpoints.ts";
import { createLogger, type Logger } from "../runtime/log.ts";
import { type OptionSpecs, type OptionValues, parseOptions, printable, requireOption } from "../runtime/options.ts";
import { readToken } from "../runtime/secret-input.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { relayFromFlags } from "../transport/call-error.ts";
import { type ProxySettings, preflightProxy, proxyOptionSpecs, proxySettings } from "../transport/proxy.ts";
import { RelayClient } from "../transport/relay-client.ts";
import { AllowList } from "./allow-list.ts";
import { parseDeviceName } from "./device-identity.ts";
import { HubSession } from "./hub-session.ts";
import { type AgentMetrics, agentMetrics } from "./metrics.ts";
import { RelaySession } from "./relay-session.ts";

export const agentOptionSpecs = {
  relay: { kind: "address", description: "static mode: the relay to dial out to" },
  token: {
    kind: "string",
    description: "static mode: the stream's destination token (prefer `--token-file`)",
    secret: true,
  },
  "token-file": { kind: "file", description: "static mode: file holding the stream's destination token" },
  ca: {
    kind: "file",
    description: "static mode: CA bundle (PEM) the relay's certificate must chain to (default: system roots)",
  },
  "server-name": {
    kind: "string",
    description: "static mode: TLS name to expect from the relay, when not the address's host",
  },
  hub: {
    kind: "address",
    description: "hub mode: the hub to dial out to, e.g. the `devicestreams-hub` Service",
  },
  "hub-ca": {
    kind: "file",
    description: "hub mode: CA bundle (PEM) the hub's certificate must chain to (the operator CA's `tls.crt`)",
  },
  "hub-server-name": {
    kind: "string",
    description: "hub mode: TLS name to expect from the hub, when not the address's host",
  },
  device: {
    kind: "string",
    placeholder: "NAMESPACE/NAME",
    description: "hub mode: this device's `Device` as `NAMESPACE/NAME`",
  },
  "enrollment-token-file": {
    kind: "file",
    description:
      "hub mode: the one-time token from the Secret the Device's `status.enrollment` names; first start only",
  },
  "state-dir": {
    kind: "file",
    description: "hub mode: where the device key (made here, never sent) and its certificate are kept, 0600",
  },
  allow: {
    kind: "list",
    placeholder: "NAME=HOST:PORTS",
    description:
      "allow-list entry `name=host:port` (e.g. `ssh=127.0.0.1:22`), or with a range and ports (`ftp=127.0.0.1:21,30000-30100`): the only targets this device will ever dial",
  },
  config: {
    kind: "file",
    description: 'allow-list file, `{"services": {"ssh": "127.0.0.1:22", "ftp": "127.0.0.1:21,30000-30100"}}`',
  },
  "metrics-listen": {
    kind: "address",
    description: "`/metrics`, `/healthz`, `/readyz` (ready when attached)",
    default: "127.0.0.1:9091",
  },
  "dial-timeout": { kind: "duration", description: "give up reaching a local target after", default: "10s" },
  "keepalive-time": { kind: "duration", description: "ping a quiet relay or hub after", default: "10s" },
  "keepalive-timeout": {
    kind: "duration",
    description: "declare the relay or hub dead when a ping goes unanswered for",
    default: "5s",
  },
  "heartbeat-interval": {
    kind: "duration",
    description: "hub mode: heartbeat on the control session every",
    default: "10s",
  },
  ...proxyOptionSpecs,
} satisfies OptionSpecs;

export interface RunningAgent {
  /** Static mode's one relay session. */
  session?: RelaySession;
  /** Hub mode's control session. */
  hub?: HubSession;
  metricsPort: number;
  stop(): Promise<void>;
}

type AgentOptions = OptionValues<typeof agentOptionSpecs>;

interface Mode {
  readiness: () => string;
  stop: () => void;
  session?: RelaySession;
  hub?: HubSession;
}

function staticMode(
  o: AgentOptions,
  proxy: ProxySettings | undefined,
  allowList: AllowList,
  metrics: AgentMetrics,
  log: Logger,
): Mode {
  const token = readToken(o.token, o["token-file"], "stream's destination token", "token");
  const relay = new RelayClient({
    address: requireOption("agent", "relay", o.relay),
    tls: { caPem: o.ca ? readPem(o.ca, "CA bundle") : undefined },
    keepalive: { timeMs: o["keepalive-time"], timeoutMs: o["keepalive-timeout"] },
    serverName: o["server-name"],
    proxy,
  });
  const session = new RelaySession({
    relay,
    dialled: relayFromFlags,
    token,
    allowList,
    dialTimeoutMs: o["dial-timeout"],
    metrics,
    log,
  });
  session.start();
  return {
    session,
    readiness: () =>
      session.state === "attached"
        ? ""
        : `not attached to the relay (${session.state}${session.lastError ? `: ${session.lastError}` : ""})`,
    stop: () => {
      session.stop();
      relay.close();
    },
  };
}

function hubMode(
  hubAddress: string,
  o: AgentOptions,
  proxy: ProxySettings | undefined,
  allowList: AllowList,
  metrics: AgentMetrics,
  log: Logger,
): Mode {
  const hub = new HubSession({
    address: hubAddress,
    caPem: readPem(requireOption("agent", "hub-ca", o["hub-ca"]), "hub CA bundle"),
    serverName: o["hub-server-name"],
    device: parseDeviceName(requireOption("agent", "device", o.device)),
    stateDir: requireOption("agent", "state-dir", o["state-dir"]),
    tokenFile: o["enrollment-token-file"],
    allowList,
    dialTimeoutMs: o["dial-timeout"],
    keepalive: { timeMs: o["keepalive-time"], timeoutMs: o["keepalive-timeout"] },
    proxy,
    heartbeatMs: o["heartbeat-interval"],
    metrics,
    log,
  });
  hub.start();
  return {
    hub,
    readiness: () => (hub.state === "connected" ? "" : `hub session ${hub.state}: waiting for ${hub.waitingFor}`),
    stop: () => hub.stop(),
  };
}

export async function runAgent(argv: string[]): Promise<RunningAgent | undefined> {
  const summary =
    "Edge agent: dials out to a relay (static mode) or to the hub (hub mode) and carries tunnelled connections to local targets.";
  const o = parseOptions("agent", summary, agentOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("agent");
  const allowList = AllowList.from(o.allow, o.config);
  log.info("starting", { services: allowList.services.join(",") || "(none)", ...printable(agentOptionSpecs, o) });
  if (!allowList.services.length)
    log.warn("the allow-list is empty: every stream will be refused; add --allow name=host:port");

  const proxy = proxySettings(o.proxy, o["proxy-auth-file"]);
  if (proxy) await preflightProxy(proxy, o.hub ?? requireOption("agent", "relay", o.relay), log);

  const registry = createRegistry("agent");
  const metrics = agentMetrics(registry);
  const mode = o.hub
    ? hubMode(o.hub, o, proxy, allowList, metrics, log)
    : staticMode(o, proxy, allowList, metrics, log);
  const endpoints = await serveEndpoints(o["metrics-listen"], registry, mode.readiness);
  log.info("ready", { metricsPort: endpoints.port });
  const stop = async () => {
    mode.stop();
    await endpoints.close();
  };
  onShutdownSignals(log, stop, stop);
  return { session: mode.session, hub: mode.hub, metricsPort: endpoints.port, stop };
}
