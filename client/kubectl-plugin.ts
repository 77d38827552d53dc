// `kubectl devicestream …` (the npm bin `kubectl-devicestream`): open, use, list and close
// DeviceStreams with the user's own kubeconfig. The data path is the same as `devicestreams
// connect` (local-port.ts, stdio.ts); only where the relay and its credentials come from differs:
// the cluster, guarded by RBAC (the verb `connect` on the stream, checked by the relay).
import { KubeConfig } from "@kubernetes/client-node";
import { streamServices } from "../api/devicestream.ts";
import { type DeviceStream, deviceStreamResource } from "../api/v1alpha1.ts";
import { collectionPath, KubeClient, objectPath } from "../kube/client.ts";
import type { KubeList } from "../kube/types.ts";
import { formatDuration } from "../runtime/duration.ts";
import { DeviceStreamsError, describeError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import { createLogger, type Logger } from "../runtime/log.ts";
import { optionHelp } from "../runtime/option-text.ts";
import { type OptionSpecs, type OptionValues, readCommandLine } from "../runtime/options.ts";
import { onShutdownSignals } from "../runtime/shutdown.ts";
import { proxyOptionSpecs, proxySettings } from "../transport/proxy.ts";
import { parseForwardSpec, parseServiceChoice } from "./forward-spec.ts";
import { explainKubeError } from "./kube-errors.ts";
import { openStream } from "./open-stream.ts";
import { startForwards } from "./service-forwards.ts";
import { tunnelStdio } from "./stdio.ts";
import {
  getStream,
  readyCondition,
  relayRoutes,
  type StreamAccess,
  streamAccess,
  waitForRelay,
} from "./stream-lookup.ts";
import { prepareWeb, runWeb, webOptionSpecs } from "./web/command.ts";

export const pluginOptionSpecs = {
  kubeconfig: { kind: "file", description: "as kubectl's: else `$KUBECONFIG`, else `~/.kube/config`, else in-cluster" },
  context: { kind: "string", description: "as kubectl's: the kubeconfig context to use" },
  namespace: {
    kind: "string",
    short: "n",
    description: "as kubectl's: the streams' namespace; else the context's, else `default`",
  },
  service: {
    kind: "list",
    description:
      "open: the device's services to reach (allow-list names: `ssh`, or `ssh,web` for one stream carrying both); ssh-proxy: the one to reach (`NAME[:PORT]`; default: the stream's first)",
  },
  name: { kind: "string", description: "open: the DeviceStream's name; else one made from device and service" },
  timeout: { kind: "duration", description: "open: how long to wait here for the stream to connect", default: "2m" },
  "connect-timeout": {
    kind: "duration",
    description: "open: the stream's own `spec.timeouts.connect`, how long it waits for its device (CRD default 5m)",
  },
  idle: {
    kind: "duration",
    description: "open: the stream's `spec.timeouts.idle`, how long it lives without traffic (CRD default 15m)",
  },
  "max-lifetime": {
    kind: "duration",
    description: "open: the stream's `spec.timeouts.maxLifetime`, when it ends whatever happens (CRD default 8h)",
  },
  "max-connections": {
    kind: "integer",
    min: 1,
    max: 10000,
    description: "open: the stream's `spec.limits.maxConnections`, concurrent connections it carries (CRD default 100)",
  },
  expose: {
    kind: "string",
    choices: ["ClusterIP", "NodePort", "LoadBalancer"],
    description:
      "open: the stream's `spec.relay.exposure`, how its relay Service is reached (CRD default ClusterIP; the operator's --relay-exposures says which are allowed)",
  },
  wait: {
    kind: "duration",
    description: "connect, ssh-proxy, web: how long to wait for a relay that is still starting",
    default: "1m",
  },
  local: {
    kind: "list",
    short: "L",
    placeholder: "[BIND:]PORT[:SERVICE[:PORT]]",
    description:
      "connect: listen here and tunnel every connection: `2222` (the stream's first service), or `2222:ssh`, `8080:web`, `30005:ftp:30005` on a stream of several services; repeatable",
  },
  socks5: {
    kind: "address",
    defaultHost: "127.0.0.1",
    description:
      "connect: a SOCKS5 and HTTP CONNECT proxy here (e.g. `1080`): the host a client asks for names the service, the port picks within a range (`curl --socks5-hostname 127.0.0.1:1080 http://web/`)",
  },
  "max-local-clients": {
    kind: "integer",
    min: 1,
    description: "connect `--socks5`: local clients at once, from connect to close; more are refused in their protocol",
    default: "1000",
  },
  "socks5-handshake-timeout": {
    kind: "duration",
    description: "connect `--socks5`: close a local client that has not sent its whole request by then",
    default: "10s",
  },
  via: {
    kind: "string",
    choices: relayRoutes,
    default: "auto",
    description:
      "connect, ssh-proxy, web: how to reach the relay: `auto` (the stream's external endpoint, else cluster DNS, else the API server), `apiserver` (a port-forward to the relay Pod, needs pods/portforward), `pod-ip`",
  },
  ...proxyOptionSpecs,
  "relay-address": {
    kind: "address",
    description: "connect, ssh-proxy, web: dial the relay at an address of your own (a port-forward, a tunnel)",
  },
  ...webOptionSpecs,
} satisfies OptionSpecs;

const help = [
  "kubectl devicestream: reach a device's TCP service through a DeviceStream",
  "",
  "Usage:",
  "  kubectl devicestream open DEVICE --service NAME[,NAME…] [--name N] [--timeout 2m] [--connect-timeout 5m]",
  "                              [--idle 15m] [--max-lifetime 8h] [--max-connections 100] [--expose ClusterIP]",
  "  kubectl devicestream connect STREAM -L [bind:]PORT[:SERVICE[:PORT]] … [--socks5 [host:]PORT]",
  "  kubectl devicestream ssh-proxy STREAM [--service NAME]  (ssh -o ProxyCommand='kubectl devicestream ssh-proxy %h' user@STREAM)",
  "  kubectl devicestream web STREAM [--user U] [-i KEY] [--listen [host:]PORT] [--open]   (a terminal in the browser)",
  "  kubectl devicestream list",
  "  kubectl devicestream close STREAM",
  "",
  "Options:",
  ...optionHelp(pluginOptionSpecs),
  "",
].join("\n");

type Values = OptionValues<typeof pluginOptionSpecs>;

function parse(argv: string[]) {
  return readCommandLine(pluginOptionSpecs, argv, { name: "kubectl devicestream", positionals: true });
}

/** As kubectl: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else in-cluster; --context; -n. */
export function loadKubeConfig(v: Pick<Values, "kubeconfig" | "context">): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (v.kubeconfig) kc.loadFromFile(v.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new DeviceStreamsError(
      "DS_KUBECONFIG",
      `cannot read the kubeconfig (${(err as Error).message}); pass --kubeconfig FILE or set KUBECONFIG, as for kubectl`,
      { cause: err },
    );
  }
  if (v.context) {
    if (!kc.getContextObject(v.context)) {
      throw new DeviceStreamsError("DS_USAGE", `context "${v.context}" is not in the kubeconfig`);
    }
    kc.setCurrentContext(v.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new DeviceStreamsError(
      "DS_KUBECONFIG",
      "no cluster configured: pass --kubeconfig or set KUBECONFIG (as for kubectl)",
    );
  }
  return kc;
}

function namespaceOf(kc: KubeConfig, v: Values): string {
  return v.namespace || kc.getContextObject(kc.getCurrentContext())?.namespace || "default";
}

function need(value: string | undefined, what: string): string {
  if (!value) throw new DeviceStreamsError("DS_USAGE", `${what} is required; run \`kubectl devicestream --help\``);
  return value;
}

function age(created: string | undefined, now = Date.now()): string {
  if (!created) return "?";
  const s = Math.max(0, Math.floor((now - Date.parse(created)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join("")).join("\n");
}

const durationText = (ms: number | undefined) => (ms === undefined ? undefined : formatDuration(ms));

const stderr = (line: string) => process.stderr.write(`${line}\n`);

async function usable(kube: KubeClient, kc: KubeConfig, ns: string, name: string, v: Values, log: Logger) {
  const ds = await waitForRelay(kube, ns, name, v.wait, stderr);
  const proxy = proxySettings(v.proxy, v["proxy-auth-file"]);
  return streamAccess(kube, ds, { relayAddress: v["relay-address"], via: v.via, kubeConfig: kc, log, proxy });
}

/**
 * Explains, once, a refusal of the source token that the plugin fell back to: the user did not
 * choose it, their kubeconfig (client certificates) left no other credential.
 */
function sourceTokenHint(access: StreamAccess): (err: Error) => void {
  let said = false;
  return (err) => {
    if (said || !access.usesSourceToken || (err as { code?: string }).code !== "DS_SOURCE_TOKEN_DISABLED") return;
    said = true;
    stderr(
      `kubectl devicestream: your kubeconfig yields no bearer token (it authenticates with a client certificate), so the stream's source token was used, and DeviceStream "${access.stream.metadata.name}" accepts only users' own credentials (spec.access.sourceToken is false); use a kubeconfig with a token (an exec or OIDC plugin, a ServiceAccount token), or create the stream with spec.access.sourceToken: true`,
    );
  };
}

/**
 * Refuses at once a service the stream does not carry (the relay would refuse each connection):
 * a typo in `-L 2222:shh` is better said before anything listens.
 */
async function checkServices(access: StreamAccess, named: Array<string | undefined>): Promise<void> {
  const ds = access.stream;
  const services = streamServices(ds.spec);
  for (const s of named) {
    if (s !== undefined && !services.includes(s)) {
      await access.close(); // the relay's connection would keep the process running
      throw new DeviceStreamsError(
        "DS_SERVICE_NOT_IN_STREAM",
        `DeviceStream "${ds.metadata.name}" carries ${services.map((x) => `"${x}"`).join(", ")}, not "${s}"; name one of them, or open a stream with --service ${s}`,
      );
    }
  }
}

export async function runKubectlPlugin(argv: string[]): Promise<number> {
  const { help: helpAsked, values: v, positionals } = parse(argv);
  const [command, arg] = positionals;
  if (helpAsked || !command || command === "help") {
    process.stdout.write(help);
    return 0;
  }
  const kc = loadKubeConfig(v);
  const ns = namespaceOf(kc, v);
  const kube = new KubeClient(kc);
  try {
    switch (command) {
      case "open": {
        const device = need(arg, "DEVICE");
        const services = [...new Set(v.service)];
        need(services[0], "--service");
        const ds = await openStream(
          kube,
          {
            namespace: ns,
            device,
            services,
            name: v.name,
            timeoutMs: v.timeout,
            connectTimeout: durationText(v["connect-timeout"]),
            idle: durationText(v.idle),
            maxLifetime: durationText(v["max-lifetime"]),
            maxConnections: v["max-connections"],
            exposure: v.expose,
          },
          (line) => process.stdout.write(`${line}\n`),
        );
        const name = ds.metadata.name!;
        const nsFlag = v.namespace ? ` -n ${ns}` : "";
        const connectLines =
          services.length === 1
            ? [
                `  kubectl devicestream connect ${name}${nsFlag} -L 2222      # then: ssh -p 2222 user@127.0.0.1`,
                `  ssh -o ProxyCommand='kubectl devicestream ssh-proxy${nsFlag} %h' user@${name}`,
              ]
            : [
                `  kubectl devicestream connect ${name}${nsFlag} ${services.map((s, i) => `-L ${10000 + i}:${s}`).join(" ")}`,
                `  kubectl devicestream connect ${name}${nsFlag} --socks5 1080      # the host names the service: curl --socks5-hostname 127.0.0.1:1080 http://SERVICE/`,
              ];
        process.stdout.write(
          [
            "",
            `Stream "${name}" is ready. Connect with:`,
            ...connectLines,
            `Close it with: kubectl devicestream close ${name}${nsFlag}`,
            "",
          ].join("\n"),
        );
        return 0;
      }
      case "connect": {
        const name = need(arg, "STREAM");
        if (!v.local.length && !v.socks5) need(undefined, "-L [bind:]PORT[:SERVICE] or --socks5 [host:]PORT");
        const forwards = v.local.map((spec) => parseForwardSpec(spec));
        const log = createLogger("connect");
        const access = await usable(kube, kc, ns, name, v, log);
        await checkServices(
          access,
          forwards.map((f) => f.choice?.service),
        );
        const socks = v.socks5 ? splitHostPort(v.socks5) : undefined;
        const started = await startForwards({
          relay: access.relay,
          credential: access.credential,
          forwards,
          socks: socks && {
            ...socks,
            maxClients: v["max-local-clients"],
            handshakeTimeoutMs: v["socks5-handshake-timeout"],
          },
          log,
          onError: sourceTokenHint(access),
        }).catch(async (err) => {
          await access.close();
          throw err;
        });
        for (const line of started.listening) {
          process.stdout.write(
            `listening on ${line} → DeviceStream ${ns}/${name} (relay ${access.address} via ${access.via}); Ctrl-C to stop\n`,
          );
        }
        // Until Ctrl-C: the handler closes the ports and the relay, then exits 0.
        const close = async () => {
          await started.close();
          await access.close();
        };
        onShutdownSignals(log, close, async () => {});
        return await new Promise<number>(() => {});
      }
      case "ssh-proxy": {
        const name = need(arg, "STREAM");
        if (v.service.length > 1) throw new DeviceStreamsError("DS_USAGE", "ssh-proxy reaches one --service");
        const choice = v.service[0] ? parseServiceChoice(v.service[0], "--service") : undefined;
        const access = await usable(kube, kc, ns, name, v, createLogger("ssh-proxy"));
        await checkServices(access, [choice?.service]);
        kube.close();
        const err = await tunnelStdio(access.relay, access.credential, choice);
        await access.close();
        if (!err) return 0;
        sourceTokenHint(access)(err);
        // Say what the stream itself reports: often the reason (device gone, stream ended).
        let context = "";
        try {
          const ds = await getStream(new KubeClient(kc), ns, name);
          const ready = readyCondition(ds);
          if (ready) context = ` (DeviceStream ${name}: ${ds.status?.phase}, ${ready.reason}: ${ready.message})`;
        } catch {
          // the stream may be gone: the error alone says enough
        }
        stderr(`kubectl devicestream ssh-proxy: ${describeError(err)}${context}`);
        return 1;
      }
      case "web": {
        const name = need(arg, "STREAM");
        const log = createLogger("web");
        const setup = prepareWeb(v, log);
        const access = await usable(kube, kc, ns, name, v, log);
        return await runWeb({ setup, access, namespace: ns, values: v, log, onTunnelError: sourceTokenHint(access) });
      }
      case "list": {
        let list: KubeList<DeviceStream>;
        try {
          list = await kube.list<KubeList<DeviceStream>>(collectionPath({ ...deviceStreamResource }, ns));
        } catch (err) {
          throw explainKubeError(err, `list DeviceStreams in namespace "${ns}"`);
        }
        if (!list.items.length) {
          process.stdout.write(`No DeviceStreams in namespace ${ns}.\n`);
          return 0;
        }
        const rows = [["NAME", "DEVICE", "SERVICE", "PHASE", "REASON", "LAST USER", "LAST CONNECTION", "AGE"]];
        for (const ds of list.items) {
          const last = ds.status?.lastConnection;
          rows.push([
            ds.metadata.name!,
            ds.spec.device,
            streamServices(ds.spec).join(","),
            ds.status?.phase ?? "Pending",
            readyCondition(ds)?.reason ?? "",
            last?.user ?? "<none>",
            last?.time ? `${age(last.time)} ago` : "<none>",
            age(ds.metadata.creationTimestamp),
          ]);
        }
        process.stdout.write(`${table(rows)}\n`);
        return 0;
      }
      case "close": {
        const name = need(arg, "STREAM");
        try {
          await kube.delete(objectPath({ ...deviceStreamResource }, ns, name));
        } catch (err) {
          throw explainKubeError(
            err,
            `delete DeviceStream "${name}"`,
            () =>
              new DeviceStreamsError(
                "DS_NO_SUCH_STREAM",
                `DeviceStream "${name}" does not exist in namespace "${ns}"; see \`kubectl devicestream list -n ${ns}\``,
              ),
          );
        }
        process.stdout.write(`devicestream "${name}" closed\n`);
        return 0;
      }
      default:
        throw new DeviceStreamsError("DS_USAGE", `unknown command "${command}"; run \`kubectl devicestream --help\``);
    }
  } finally {
    kube.close();
  }
}
