// `devicestreams connect`: the service side. Forwards a local port, or stdin/stdout for ssh's
// ProxyCommand, through the relay to the device.

import { DeviceStreamsError, describeError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { type OptionSpecs, parseOptions } from "../runtime/options.ts";
import { readToken } from "../runtime/secret-input.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { preflightProxy, proxyOptionSpecs, proxySettings } from "../transport/proxy.ts";
import { RelayClient } from "../transport/relay-client.ts";
import { forwardLocalPort, type LocalPortForward } from "./local-port.ts";
import { tunnelStdio } from "./stdio.ts";

export const connectOptionSpecs = {
  relay: { kind: "address", description: "the stream's relay", required: true },
  token: { kind: "string", description: "the stream's source token (prefer `--token-file`)", secret: true },
  "token-file": { kind: "file", description: "file holding the stream's source token" },
  ca: {
    kind: "file",
    description: "CA bundle (PEM) the relay's certificate must chain to (default: system roots)",
  },
  "server-name": { kind: "string", description: "TLS name to expect from the relay, when not the address's host" },
  local: {
    kind: "address",
    defaultHost: "127.0.0.1",
    short: "L",
    description: "listen locally (e.g. `2222`); every connection is tunnelled",
  },
  stdio: {
    kind: "boolean",
    description:
      "tunnel stdin/stdout: `ssh -o ProxyCommand='devicestreams connect --stdio --relay … --ca … --token-file …' user@device`",
  },
  "keepalive-time": { kind: "duration", description: "ping a quiet relay after", default: "10s" },
  "keepalive-timeout": {
    kind: "duration",
    description: "declare the relay dead when a ping goes unanswered for",
    default: "5s",
  },
  ...proxyOptionSpecs,
} satisfies OptionSpecs;

export async function runConnect(argv: string[]): Promise<LocalPortForward | undefined> {
  const summary = "Reaches a device's service through a stream's relay: a local port, or stdio for ssh.";
  const o = parseOptions("connect", summary, connectOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("connect");
  if (o.stdio === !!o.local) {
    throw new DeviceStreamsError("DS_USAGE", "choose one mode: --local [host:]port, or --stdio (for ProxyCommand)");
  }
  const proxy = proxySettings(o.proxy, o["proxy-auth-file"]);
  if (proxy) await preflightProxy(proxy, o.relay, log);
  const relay = new RelayClient({
    proxy,
    address: o.relay,
    tls: { caPem: o.ca ? readPem(o.ca, "CA bundle") : undefined },
    keepalive: { timeMs: o["keepalive-time"], timeoutMs: o["keepalive-timeout"] },
    serverName: o["server-name"],
  });
  const token = readToken(o.token, o["token-file"], "stream's source token", "token");
  if (o.stdio) {
    const err = await tunnelStdio(relay, token);
    relay.close();
    if (err) {
      process.stderr.write(`devicestreams connect: ${describeError(err)}\n`);
      process.exitCode = 1;
    }
    return undefined;
  }
  const { host, port } = splitHostPort(o.local!);
  const forward = await forwardLocalPort(relay, token, host, port, log);
  log.info("forwarding", { local: `${host}:${forward.port}`, relay: o.relay });
  process.stdout.write(`listening on ${host}:${forward.port}\n`);
  const stop = async () => {
    await forward.close();
    relay.close();
  };
  onShutdownSignals(log, stop, async () => {});
  return { ...forward, close: stop };
}
