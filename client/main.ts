// `devicestreams connect`: the service side. Forwards local ports (each to a service of the
// stream), a SOCKS5 / HTTP CONNECT proxy (the client names the service), or stdin/stdout for
// ssh's ProxyCommand, through the relay to the device.

import { DeviceStreamsError, describeError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import { createLogger } from "../runtime/log.ts";
import { type OptionSpecs, parseOptions } from "../runtime/options.ts";
import { readToken } from "../runtime/secret-input.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { readPem } from "../runtime/tls.ts";
import { preflightProxy, proxyOptionSpecs, proxySettings } from "../transport/proxy.ts";
import { RelayClient } from "../transport/relay-client.ts";
import { parseForwardSpec, parseServiceChoice } from "./forward-spec.ts";
import { type Forwards, startForwards } from "./service-forwards.ts";
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
    kind: "list",
    short: "L",
    placeholder: "[BIND:]PORT[:SERVICE[:PORT]]",
    description:
      "listen locally and tunnel every connection: `2222` (the stream's first service), or `2222:ssh`, `8080:web`, `30005:ftp:30005` on a stream of several services; repeatable",
  },
  socks5: {
    kind: "address",
    defaultHost: "127.0.0.1",
    description:
      "a SOCKS5 and HTTP CONNECT proxy here (e.g. `1080`): the host a client asks for names the service, the port picks within a range (`curl --socks5-hostname 127.0.0.1:1080 http://web/`)",
  },
  service: {
    kind: "string",
    placeholder: "NAME[:PORT]",
    description: "`--stdio`: the service to reach (default: the stream's first)",
  },
  stdio: {
    kind: "boolean",
    description:
      "tunnel stdin/stdout: `ssh -o ProxyCommand='devicestreams connect --stdio --relay … --ca … --token-file …' user@device`",
  },
  "max-local-clients": {
    kind: "integer",
    min: 1,
    description: "`--socks5`: local clients at once, from connect to close; more are refused in their protocol",
    default: "1000",
  },
  "socks5-handshake-timeout": {
    kind: "duration",
    description: "`--socks5`: close a local client that has not sent its whole request by then",
    default: "10s",
  },
  "keepalive-time": { kind: "duration", description: "ping a quiet relay after", default: "10s" },
  "keepalive-timeout": {
    kind: "duration",
    description: "declare the relay dead when a ping goes unanswered for",
    default: "5s",
  },
  ...proxyOptionSpecs,
} satisfies OptionSpecs;

export async function runConnect(argv: string[]): Promise<Forwards | undefined> {
  const summary =
    "Reaches a device's services through a stream's relay: local ports, a SOCKS5 proxy, or stdio for ssh.";
  const o = parseOptions("connect", summary, connectOptionSpecs, argv);
  if (!o) return undefined;
  const log = createLogger("connect");
  const listens = o.local.length > 0 || !!o.socks5;
  if (o.stdio === listens) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      "choose one mode: -L [bind:]port[:service] and/or --socks5 [host:]port, or --stdio (for ProxyCommand)",
    );
  }
  if (o.service && !o.stdio) throw new DeviceStreamsError("DS_USAGE", "--service is for --stdio; -L names its service");
  const forwards = o.local.map((spec) => parseForwardSpec(spec));
  const stdioChoice = o.service ? parseServiceChoice(o.service, "--service") : undefined;
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
    const err = await tunnelStdio(relay, token, stdioChoice);
    relay.close();
    if (err) {
      process.stderr.write(`devicestreams connect: ${describeError(err)}\n`);
      process.exitCode = 1;
    }
    return undefined;
  }
  const socks = o.socks5 ? splitHostPort(o.socks5) : undefined;
  const started = await startForwards({
    relay,
    credential: token,
    forwards,
    socks: socks && {
      ...socks,
      maxClients: o["max-local-clients"],
      handshakeTimeoutMs: o["socks5-handshake-timeout"],
    },
    log,
  }).catch((err) => {
    relay.close();
    throw err;
  });
  for (const line of started.listening) {
    log.info("forwarding", { local: line, relay: o.relay });
    process.stdout.write(`listening on ${line}\n`);
  }
  const stop = async () => {
    await started.close();
    relay.close();
  };
  onShutdownSignals(log, stop, async () => {});
  return { ...started, close: stop };
}
