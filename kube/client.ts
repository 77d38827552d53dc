// A small JSON client for the Kubernetes API. Authentication comes from client-node's KubeConfig
// (kubeconfig files, in-cluster tokens, exec plugins); requests go over one keep-alive agent per
// client so that 500 reconciles do not mean 500 TLS handshakes (a second client, e.g. the hub's,
// has its own sockets and cannot starve this one). Every request has a total deadline and a cap
// on the answer it buffers; watches use client-node's Watch, which streams.
import { Agent as HttpAgent, request as httpRequest, type OutgoingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from "node:https";
import { type KubeConfig, Watch } from "@kubernetes/client-node";
import { DeviceStreamsError } from "../runtime/errors.ts";

export interface Resource {
  /** "" for the core API group. */
  group: string;
  version: string;
  plural: string;
  kind: string;
}

/**
 * One path segment, percent-encoded, so that a name can never add a segment, a query or a
 * fragment; "", "." and ".." can never be names and would move the path, so they are refused.
 */
function segment(value: string, what: string): string {
  if (value === "" || value === "." || value === "..") {
    throw new KubeApiError(0, "InvalidPath", `${JSON.stringify(value)} cannot be a ${what} in a request path`, {
      retryable: false,
    });
  }
  return encodeURIComponent(value);
}

export function collectionPath(res: Resource, namespace?: string): string {
  const version = segment(res.version, "version");
  const base = res.group ? `/apis/${segment(res.group, "group")}/${version}` : `/api/${version}`;
  const plural = segment(res.plural, "resource");
  return namespace ? `${base}/namespaces/${segment(namespace, "namespace")}/${plural}` : `${base}/${plural}`;
}

export function objectPath(res: Resource, namespace: string, name: string, subresource?: string): string {
  const path = `${collectionPath(res, namespace)}/${segment(name, "name")}`;
  return subresource ? `${path}/${segment(subresource, "subresource")}` : path;
}

// RFC 3986 path characters only, each segment non-empty: no "?", "#", "\\", spaces or controls,
// which URL parsing would turn into a query, a fragment, a "/" or drop.
const plainPath = /^(?:\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+)+$/;

/**
 * Why `path` is not a plain absolute path to request (a name that escaped encoding, or a caller
 * that built a path by hand), or undefined. Dot segments count in any spelling ("%2e" too): URL
 * parsing resolves them, which is how a path could leave the resource it was built for.
 */
export function pathProblem(path: string): string | undefined {
  if (!plainPath.test(path)) {
    return "it must be an absolute path of non-empty segments without a query, a fragment or special characters";
  }
  for (const s of path.split("/")) {
    const decoded = s.replace(/%2e/gi, ".");
    if (decoded === "." || decoded === "..") return "it has a dot segment";
  }
  return undefined;
}

function checkPath(method: string, path: string): void {
  const why = pathProblem(path);
  if (why) {
    throw new KubeApiError(0, "InvalidPath", `refusing ${method} ${JSON.stringify(path.slice(0, 200))}: ${why}`, {
      retryable: false,
    });
  }
}

export const core = {
  pods: { group: "", version: "v1", plural: "pods", kind: "Pod" },
  services: { group: "", version: "v1", plural: "services", kind: "Service" },
  secrets: { group: "", version: "v1", plural: "secrets", kind: "Secret" },
  leases: { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease" },
  events: { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event" },
} as const satisfies Record<string, Resource>;

/** An error answer of the API server (or none in time), with its HTTP status and Status reason. */
export class KubeApiError extends DeviceStreamsError {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    // 0 = no answer at all; 409 conflicts, 429 throttling and 5xx pass with time.
    const retryable = options.retryable ?? (status === 0 || status === 409 || status === 429 || status >= 500);
    super("DS_KUBE_API", message, { cause: options.cause, retryable });
    this.status = status;
    this.reason = reason;
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.status === 404;
export const isAlreadyExists = (err: unknown) => err instanceof KubeApiError && err.reason === "AlreadyExists";
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.status === 409;

const mib = 1024 * 1024;

export interface RequestOpts {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Total time for the whole exchange, from sending to the last byte of the answer. */
  timeoutMs?: number;
  /** The largest answer buffered; more is an error, not a partial result. */
  maxBytes?: number;
}

export interface KubeClientOptions {
  /** Default total deadline of a request (30 s). */
  timeoutMs?: number;
  /** Largest answer to one object request (4 MiB; etcd keeps objects under 1.5 MiB). */
  maxResponseBytes?: number;
  /** Largest answer to one list page (32 MiB: 500 objects of a large kind). */
  maxListResponseBytes?: number;
  /** Keep-alive sockets to the API server at most (32). */
  maxSockets?: number;
  /** Names this client in the API server's audit log and metrics ("devicestreams"). */
  userAgent?: string;
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly server: URL;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxListResponseBytes: number;
  private readonly maxSockets: number;
  private readonly userAgent: string;
  private agent: HttpAgent | undefined;

  constructor(kubeConfig: KubeConfig, options: KubeClientOptions = {}) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) {
      throw new DeviceStreamsError("DS_KUBECONFIG", "the kubeconfig has no current cluster: set its current-context");
    }
    this.kubeConfig = kubeConfig;
    this.server = new URL(cluster.server);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 4 * mib;
    this.maxListResponseBytes = options.maxListResponseBytes ?? 32 * mib;
    this.maxSockets = options.maxSockets ?? 32;
    this.userAgent = options.userAgent ?? "devicestreams";
  }

  async request<T>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
    checkPath(method, path);
    const base = this.server.pathname.replace(/\/$/, "");
    const url = new URL(base + path, this.server);
    // Belt and braces: nothing URL parsing would rewrite may reach the wire.
    if (url.pathname !== base + path) {
      throw new KubeApiError(0, "InvalidPath", `refusing ${method} ${path}: URL parsing would change it`, {
        retryable: false,
      });
    }
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const tls: RequestOptions = {};
    // Adds CA, client certificate and the Authorization/Impersonate headers, refreshing tokens.
    await this.kubeConfig.applyToHTTPSOptions(tls);
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: OutgoingHttpHeaders = {
      ...(tls.headers as OutgoingHttpHeaders),
      accept: "application/json",
      "user-agent": this.userAgent,
    };
    if (body !== undefined) {
      headers["content-type"] = opts.contentType ?? "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    const isHttps = url.protocol === "https:";
    const proxied = this.kubeConfig.getCurrentCluster()?.proxyUrl !== undefined;
    const agent = proxied ? tls.agent : this.sharedAgent(isHttps, tls);
    const send = isHttps ? httpsRequest : httpRequest;
    const what = `${method} ${url.pathname}`;
    const deadlineMs = opts.timeoutMs ?? this.timeoutMs;
    const maxBytes = opts.maxBytes ?? this.maxResponseBytes;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (err: KubeApiError | undefined, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (err) {
          req.destroy();
          reject(err);
        } else {
          resolve(value as T);
        }
      };
      const tooLarge = (status: number) =>
        settle(
          new KubeApiError(
            status,
            "ResponseTooLarge",
            `${what}: the answer is larger than ${maxBytes / mib} MiB, the most this client buffers; ` +
              "for a list, ask for smaller pages (limit)",
            { retryable: false },
          ),
        );
      const req = send(url, { method, headers, agent, auth: tls.auth }, (res) => {
        const status = res.statusCode ?? 0;
        if (Number(res.headers["content-length"]) > maxBytes) return tooLarge(status);
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) return tooLarge(status);
          chunks.push(c);
        });
        res.on("error", (err) => settle(new KubeApiError(0, "NoResponse", `${what}: ${err.message}`, { cause: err })));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          if (status >= 200 && status < 300) return settle(undefined, parsed as T);
          const s = (parsed ?? {}) as { reason?: string; message?: string };
          settle(
            new KubeApiError(status, s.reason ?? "Unknown", `${what}: ${status} ${s.message ?? text.slice(0, 300)}`),
          );
        });
      });
      // A total deadline, not an idle timeout: an answer trickling in slowly must end too.
      const deadline = setTimeout(
        () =>
          settle(
            new KubeApiError(
              0,
              "Timeout",
              `${what}: no complete answer within ${deadlineMs / 1000}s; is the API server overloaded or unreachable?`,
            ),
          ),
        deadlineMs,
      );
      req.on("error", (err) =>
        settle(
          new KubeApiError(0, "NoResponse", `${what}: ${err.message}; is the API server reachable?`, { cause: err }),
        ),
      );
      req.end(body);
    });
  }

  private sharedAgent(isHttps: boolean, tls: RequestOptions): HttpAgent {
    if (!this.agent) {
      const common = { keepAlive: true, maxSockets: this.maxSockets };
      this.agent = isHttps
        ? new HttpsAgent({
            ...common,
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
            pfx: tls.pfx,
            passphrase: tls.passphrase,
            servername: tls.servername,
            ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized }),
          })
        : new HttpAgent(common);
    }
    return this.agent;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  /** One page of a collection: lists may be larger than one object, up to their own cap. */
  list<T>(path: string, query: RequestOpts["query"] = {}): Promise<T> {
    return this.request<T>("GET", path, { query, maxBytes: this.maxListResponseBytes });
  }

  create<T>(path: string, obj: unknown, fieldManager: string): Promise<T> {
    return this.request<T>("POST", path, { body: obj, query: { fieldManager } });
  }

  /** Server-side apply: `obj` is the whole intent of `fieldManager` for this object. */
  apply<T>(path: string, obj: unknown, fieldManager: string, force = true): Promise<T> {
    return this.request<T>("PATCH", path, {
      body: obj,
      contentType: "application/apply-patch+yaml", // JSON is YAML
      query: { fieldManager, force },
    });
  }

  jsonPatch<T>(path: string, ops: unknown[], fieldManager: string): Promise<T> {
    return this.request<T>("PATCH", path, {
      body: ops,
      contentType: "application/json-patch+json",
      query: { fieldManager },
    });
  }

  delete(path: string, opts: { gracePeriodSeconds?: number; uid?: string } = {}): Promise<unknown> {
    const body: Record<string, unknown> = { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background" };
    if (opts.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts.uid) body.preconditions = { uid: opts.uid };
    return this.request("DELETE", path, { body });
  }

  /** Starts a watch; `done` is called once when it ends, with the error if any. */
  async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, obj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    checkPath("GET", path);
    return new Watch(this.kubeConfig).watch(path, query, onEvent, done);
  }

  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}
