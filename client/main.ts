// `devicestreams connect`: the service side. Forwards a local port, or stdin/stdout for ssh's
// ProxyCommand, through the relay to the device.

import { parseDuration } from "../runtime/duration.ts";
import { DeviceStreamsError, describeError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { parseOptions, requireOption } from "../runtime/options.ts";
import { readToken } from "../runtime/secret-input.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { RelayClient } from "../transport/relay-client.ts";
import { forwardLocalPort, type LocalPortForward } from "./local-port.ts";
import { tunnelStdio } from "./stdio.ts";

export const connectOptionSpecs = {
  relay: { description: "relay address host:port" },
  token: { description: "the stream's source token (prefer --token-file)", secret: true },
  "token-file": { description: "file holding the stream's source token" },
  ca: { description: "CA bundle (PEM) the relay's certificate must chain to (default: system roots)" },
  "server-name": { description: "TLS name to expect from the relay, when not the address's host" },
  local: { description: "listen on [host:]port and tunnel each connection (e.g. 2222)", short: "L" },
  stdio: { description: "tunnel stdin/stdout, for ssh -o ProxyCommand", boolean: true },
  "keepalive-time": { description: "ping a quiet relay after", default: "10s" },
  "keepalive-timeout": { description: "declare the relay dead when a ping goes unanswered for", default: "5s" },
};

export async function runConnect(argv: string[]): Promise<LocalPortForward | undefined> {
  const summary = "Reaches a device's service through a stream's relay: a local port, or stdio for ssh.";
  const o = parseOptions("connect", summary, connectOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("connect");
  const stdio = o.stdio === "true";
  if (stdio === !!o.local) {
    throw new DeviceStreamsError("DS_USAGE", "choose one mode: --local [host:]port, or --stdio (for ProxyCommand)");
  }
  const relay = new RelayClient({
    address: requireOption("connect", "relay", o.relay),
    tls: { caPem: o.ca ? readPem(o.ca, "CA bundle") : undefined },
    keepalive: { timeMs: parseDuration(o["keepalive-time"]!), timeoutMs: parseDuration(o["keepalive-timeout"]!) },
    serverName: o["server-name"],
  });
  const token = readToken(o.token, o["token-file"], "stream's source token", "token");
  if (stdio) {
    const err = await tunnelStdio(relay, token);
    relay.close();
    if (err) {
      process.stderr.write(`devicestreams connect: ${describeError(err)}\n`);
      process.exitCode = 1;
    }
    return undefined;
  }
  const { host, port } = /^\d+$/.test(o.local!)
    ? { host: "127.0.0.1", port: Number(o.local) }
    : splitHostPort(o.local!);
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
