// Outbound through an HTTP proxy (HTTP CONNECT), for agents and clients behind a firewall that
// lets only a proxy out, from one source of truth: `--proxy`, else HTTPS_PROXY/https_proxy, with
// NO_PROXY/no_proxy. The relay client makes its CONNECT here (connectThroughProxy); for the hub,
// grpc-js makes it from the `grpc.http_connect_*` options we set, its own reading of the
// environment switched off. grpc-js reports a refused CONNECT only as "unavailable", so
// `checkProxy` makes one CONNECT of its own to name the cause.
import { readFileSync } from "node:fs";
import { request } from "node:http";
import type { Socket } from "node:net";
import type { ChannelOptions } from "@grpc/grpc-js";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { splitHostPort } from "../runtime/http-endpoints.ts";
import type { Logger } from "../runtime/log.ts";
import type { OptionSpecs } from "../runtime/options.ts";

/** The flags of every command that dials out: the agent, `connect` and the kubectl plugin. */
export const proxyOptionSpecs = {
  proxy: {
    kind: "string",
    placeholder: "http://HOST:PORT",
    description:
      "HTTP proxy to CONNECT through to the hub and relays; else `HTTPS_PROXY` (hosts in `NO_PROXY` are dialled directly)",
  },
  "proxy-auth-file": {
    kind: "file",
    description: "file holding `user:password` for the proxy's Basic authentication (never logged)",
  },
} satisfies OptionSpecs;

export interface ProxySettings {
  /** http://host:port, without credentials (they are never logged). */
  url: string;
  host: string;
  port: number;
  /** user:password for Basic auth, from a file. */
  credentials?: string;
  /** Hosts (and `.suffix` domains) dialled directly; `*` for all. */
  noProxy: string[];
  /** Where the setting came from, for messages: `--proxy` or the variable's name. */
  source: string;
}

const maxCredentialBytes = 4096;

/** The proxy to use, or undefined for none: the flag first, else the environment. */
export function proxySettings(
  flag: string | undefined,
  authFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ProxySettings | undefined {
  const fromEnv = ["HTTPS_PROXY", "https_proxy", "GRPC_PROXY", "grpc_proxy"].find((k) => env[k]);
  const text = flag || (fromEnv && env[fromEnv]);
  if (!text) return undefined;
  const source = flag ? "--proxy" : fromEnv!;
  let url: URL;
  try {
    url = new URL(text.includes("://") ? text : `http://${text}`);
  } catch {
    throw new DeviceStreamsError("DS_CONFIG", `${source} "${text}" is not a proxy URL; use http://host:port`);
  }
  if (url.protocol !== "http:" || !url.hostname || url.pathname.length > 1) {
    throw new DeviceStreamsError(
      "DS_CONFIG",
      `${source}: only an http:// proxy URL (http://host:port) is supported, not "${url.protocol}//${url.host}${url.pathname}"`,
    );
  }
  let credentials: string | undefined;
  if (authFile) {
    let raw: Buffer;
    try {
      raw = readFileSync(authFile);
    } catch (err) {
      throw new DeviceStreamsError("DS_CONFIG", `cannot read --proxy-auth-file ${authFile}: ${(err as Error).message}`);
    }
    credentials = raw.subarray(0, maxCredentialBytes).toString("utf8").trim();
    if (!/^[^:\s]+:\S*$/.test(credentials) || raw.length > maxCredentialBytes) {
      throw new DeviceStreamsError("DS_CONFIG", `--proxy-auth-file ${authFile} must hold one line "user:password"`);
    }
  } else if (url.username) {
    credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  }
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const port = Number(url.port || 80);
  return { url: `http://${url.host}`, host: url.hostname, port, credentials, noProxy, source };
}

/** Whether `host` is dialled directly (NO_PROXY), as curl reads it: exact, or a domain suffix. */
export function bypassesProxy(host: string, noProxy: string[]): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return noProxy.some((entry) => {
    if (entry === "*") return true;
    const e = entry.replace(/:\d+$/, "").replace(/^\*?\./, ".");
    return e.startsWith(".") ? h.endsWith(e) || h === e.slice(1) : h === e;
  });
}

/**
 * The address to give grpc-js and the options that make it CONNECT through the proxy to
 * `target`. The TLS name stays the target's (or the override given), whatever is dialled.
 */
export function proxiedChannel(
  target: string,
  proxy: ProxySettings | undefined,
  serverName: string | undefined,
): { address: string; options: ChannelOptions } {
  const options: ChannelOptions = { "grpc.enable_http_proxy": 0 };
  const { host } = splitHostPort(target);
  if (!proxy || bypassesProxy(host, proxy.noProxy)) return { address: target, options };
  options["grpc.http_connect_target"] = `dns:${target}`;
  if (proxy.credentials) options["grpc.http_connect_creds"] = proxy.credentials;
  options["grpc.ssl_target_name_override"] = serverName ?? host;
  options["grpc.default_authority"] = serverName ?? target;
  const proxyHost = proxy.host.includes(":") ? `[${proxy.host}]` : proxy.host;
  return { address: `${proxyHost}:${proxy.port}`, options };
}

/**
 * One CONNECT to `target` through the proxy, closed at once: resolves when the proxy lets it
 * through, else rejects with the cause named (credentials refused, target refused, proxy down).
 */
export async function checkProxy(proxy: ProxySettings, target: string, timeoutMs = 10_000): Promise<void> {
  (await connectThroughProxy(proxy, target, timeoutMs)).destroy();
}

/**
 * A TCP connection to `target` through the proxy (HTTP CONNECT, Basic auth), for the relay
 * client's TLS to run over; rejects with the cause named, as checkProxy does.
 */
export function connectThroughProxy(proxy: ProxySettings, target: string, timeoutMs: number): Promise<Socket> {
  const via = `the HTTP proxy ${proxy.url} (${proxy.source})`;
  return new Promise((resolve, reject) => {
    const req = request({
      host: proxy.host,
      port: proxy.port,
      method: "CONNECT",
      path: target,
      headers: {
        Host: target,
        ...(proxy.credentials
          ? { "Proxy-Authorization": `Basic ${Buffer.from(proxy.credentials).toString("base64")}` }
          : {}),
      },
      timeout: timeoutMs,
    });
    req.once("connect", (res, socket, head) => {
      const code = res.statusCode ?? 0;
      if (code === 200) {
        socket.setTimeout(0);
        // Bytes the proxy sent past its answer belong to the tunnel (none before TLS, normally).
        if (head.length > 0) socket.unshift(head);
        return resolve(socket);
      }
      socket.destroy();
      // 407 is the standard answer; some proxies (tinyproxy) say 401 to wrong credentials.
      if (code === 407 || code === 401) {
        return reject(
          new DeviceStreamsError(
            "DS_PROXY_AUTH",
            `${via} refused ${proxy.credentials ? "the credentials given" : "to connect without credentials"} (${code} ${res.statusMessage ?? ""}); put "user:password" for it in the file named by --proxy-auth-file`,
          ),
        );
      }
      reject(
        new DeviceStreamsError(
          "DS_PROXY_REFUSED",
          `${via} answered ${code} ${res.statusMessage ?? ""} to CONNECT ${target}; ask its administrator to allow CONNECT to that host and port`,
        ),
      );
    });
    req.once("timeout", () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.once("error", (err) =>
      reject(
        new DeviceStreamsError(
          "DS_PROXY_UNREACHABLE",
          `cannot reach ${via}: ${err.message}; check the proxy address, or unset it if this network needs none`,
          { retryable: true },
        ),
      ),
    );
    req.end();
  });
}

/**
 * Before the first dial: refused credentials or a refused CONNECT are configuration errors, so
 * they throw with the cause named. A proxy that does not answer now may later; callers retry.
 */
export async function preflightProxy(proxy: ProxySettings, target: string, log: Logger): Promise<void> {
  log.info("dialling out through an HTTP proxy", {
    proxy: proxy.url,
    from: proxy.source,
    noProxy: proxy.noProxy.join(","),
  });
  if (bypassesProxy(splitHostPort(target).host, proxy.noProxy)) return;
  try {
    await checkProxy(proxy, target);
  } catch (err) {
    if (!(err instanceof DeviceStreamsError) || err.code !== "DS_PROXY_UNREACHABLE") throw err;
    log.warn("the proxy does not answer yet; retrying through it", { error: err.message });
  }
}
