// Which upstream a server name goes to: exact names first (`--route`, `--routes-file`: the hub,
// anything static), then the relay rule `<stream>.<namespace>.<relay-domain>` → the stream's relay
// Service. The rule needs no Kubernetes API access: the relay Service's name and port follow from
// the stream's name (api/constants.ts), and cluster DNS answers for a stream that exists.
import { relayName, relayPorts } from "../api/constants.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";

export interface Upstream {
  host: string;
  port: number;
}

/** `{stream}` and `{namespace}` are replaced; the default is the relay Service in cluster DNS. */
export const defaultRelayUpstream = `${relayName("{stream}")}.{namespace}.svc.cluster.local:${relayPorts.grpc}`;

export interface RelayRule {
  /** Names `<stream>.<namespace>.<domain>` are relays' (e.g. `relay.example.com`). */
  domain: string;
  /** host:port with `{stream}` and `{namespace}` in it. */
  upstream: string;
}

// A DeviceStream's name (the CRD's rule) and a namespace: DNS labels, so a name has exactly one reading.
const streamLabel = /^[a-z](?:[-a-z0-9]{0,55}[a-z0-9])?$/;
const namespaceLabel = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/** Lowercase, without a trailing dot: how names are compared. */
export function normalName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith(".") ? n.slice(0, -1) : n;
}

function upstreamOf(address: string, where: string): Upstream {
  try {
    return splitHostPort(address);
  } catch (err) {
    throw new DeviceStreamsError("DS_GATEWAY_ROUTES_INVALID", `${where}: ${(err as Error).message}`);
  }
}

/** One `name=host:port`. */
export function parseRoute(text: string, where = "--route"): [string, Upstream] {
  const eq = text.indexOf("=");
  const name = normalName(text.slice(0, Math.max(eq, 0)));
  if (eq < 1 || !name || /[^a-z0-9_.-]/.test(name)) {
    throw new DeviceStreamsError(
      "DS_GATEWAY_ROUTES_INVALID",
      `${where}: "${text}" is not a route; write name=host:port, for example hub.example.com=devicestreams-hub.devicestreams.svc:8444`,
    );
  }
  return [name, upstreamOf(text.slice(eq + 1).trim(), `${where} (${name})`)];
}

/** A routes file: one `name=host:port` a line; blank lines and `#` comments are skipped. */
export function parseRoutesFile(text: string, file: string): Map<string, Upstream> {
  const routes = new Map<string, Upstream>();
  text.split("\n").forEach((line, i) => {
    const t = line.replace(/#.*/, "").trim();
    if (!t) return;
    const [name, up] = parseRoute(t, `${file}:${i + 1}`);
    if (routes.has(name)) {
      throw new DeviceStreamsError("DS_GATEWAY_ROUTES_INVALID", `${file}:${i + 1}: ${name} is routed twice`);
    }
    routes.set(name, up);
  });
  return routes;
}

export class RouteTable {
  private readonly suffix: string | undefined;
  private readonly exact: ReadonlyMap<string, Upstream>;
  private readonly rule: RelayRule | undefined;

  constructor(exact: ReadonlyMap<string, Upstream>, rule?: RelayRule) {
    this.exact = exact;
    this.rule = rule;
    this.suffix = rule ? `.${normalName(rule.domain)}` : undefined;
    // A template that does not make an address is refused at start, not at the first connection.
    if (rule) upstreamOf(expand(rule.upstream, "s", "ns"), "--relay-upstream");
  }

  get size(): number {
    return this.exact.size;
  }

  /** Where `name` (already normal) goes; undefined for a name the gateway does not route. */
  lookup(name: string): Upstream | undefined {
    const exact = this.exact.get(name);
    if (exact || !this.suffix || !this.rule || !name.endsWith(this.suffix)) return exact;
    const labels = name.slice(0, -this.suffix.length).split(".");
    if (labels.length !== 2) return undefined;
    const [stream, namespace] = labels as [string, string];
    if (!streamLabel.test(stream) || !namespaceLabel.test(namespace)) return undefined;
    return splitHostPort(expand(this.rule.upstream, stream, namespace));
  }

  /** The same rule with other exact routes (a reloaded file). */
  withExact(exact: ReadonlyMap<string, Upstream>): RouteTable {
    return new RouteTable(exact, this.rule);
  }
}

function expand(template: string, stream: string, namespace: string): string {
  return template.replaceAll("{stream}", stream).replaceAll("{namespace}", namespace);
}
