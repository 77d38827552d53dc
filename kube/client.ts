// A small JSON client for the Kubernetes API. Authentication comes from client-node's KubeConfig
// (kubeconfig files, in-cluster tokens, exec plugins); requests go over one keep-alive agent so
// that 500 reconciles do not mean 500 TLS handshakes. Watches use client-node's Watch.
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

export function collectionPath(res: Resource, namespace?: string): string {
  const base = res.group ? `/apis/${res.group}/${res.version}` : `/api/${res.version}`;
  return namespace ? `${base}/namespaces/${namespace}/${res.plural}` : `${base}/${res.plural}`;
}

export function objectPath(res: Resource, namespace: string, name: string, subresource?: string): string {
  const path = `${collectionPath(res, namespace)}/${encodeURIComponent(name)}`;
  return subresource ? `${path}/${subresource}` : path;
}

export const core = {
  pods: { group: "", version: "v1", plural: "pods", kind: "Pod" },
  services: { group: "", version: "v1", plural: "services", kind: "Service" },
  secrets: { group: "", version: "v1", plural: "secrets", kind: "Secret" },
  leases: { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease" },
  events: { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event" },
} as const satisfies Record<string, Resource>;

/** An error answer of the API server, with its HTTP status and Status reason. */
export class KubeApiError extends DeviceStreamsError {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, message: string, cause?: unknown) {
    // 0 = no answer at all; 409 conflicts, 429 throttling and 5xx pass with time.
    const retryable = status === 0 || status === 409 || status === 429 || status >= 500;
    super("DS_KUBE_API", message, { cause, retryable });
    this.status = status;
    this.reason = reason;
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.status === 404;
export const isAlreadyExists = (err: unknown) => err instanceof KubeApiError && err.reason === "AlreadyExists";
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.status === 409;

export interface RequestOpts {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly server: URL;
  private readonly timeoutMs: number;
  private agent: HttpAgent | undefined;

  constructor(kubeConfig: KubeConfig, options: { timeoutMs?: number } = {}) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) {
      throw new DeviceStreamsError("DS_KUBECONFIG", "the kubeconfig has no current cluster: set its current-context");
    }
    this.kubeConfig = kubeConfig;
    this.server = new URL(cluster.server);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async request<T>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
    const url = new URL(this.server.pathname.replace(/\/$/, "") + path, this.server);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const tls: RequestOptions = {};
    // Adds CA, client certificate and the Authorization/Impersonate headers, refreshing tokens.
    await this.kubeConfig.applyToHTTPSOptions(tls);
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: OutgoingHttpHeaders = { ...(tls.headers as OutgoingHttpHeaders), accept: "application/json" };
    if (body !== undefined) {
      headers["content-type"] = opts.contentType ?? "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    const isHttps = url.protocol === "https:";
    const proxied = this.kubeConfig.getCurrentCluster()?.proxyUrl !== undefined;
    const agent = proxied ? tls.agent : this.sharedAgent(isHttps, tls);
    const send = isHttps ? httpsRequest : httpRequest;
    const what = `${method} ${url.pathname}`;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { method, headers, agent, auth: tls.auth }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(new KubeApiError(0, "NoResponse", `${what}: ${err.message}`, err)));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(parsed as T);
          const s = (parsed ?? {}) as { reason?: string; message?: string };
          reject(
            new KubeApiError(status, s.reason ?? "Unknown", `${what}: ${status} ${s.message ?? text.slice(0, 300)}`),
          );
        });
      });
      req.setTimeout(opts.timeoutMs ?? this.timeoutMs, () => req.destroy(new Error("no answer in time")));
      req.on("error", (err) =>
        reject(new KubeApiError(0, "NoResponse", `${what}: ${err.message}; is the API server reachable?`, err)),
      );
      req.end(body);
    });
  }

  private sharedAgent(isHttps: boolean, tls: RequestOptions): HttpAgent {
    if (!this.agent) {
      const common = { keepAlive: true, maxSockets: 32 };
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
  watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, obj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return new Watch(this.kubeConfig).watch(path, query, onEvent, done);
  }

  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}
