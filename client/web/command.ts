// `kubectl devicestream web STREAM`: a terminal in the browser. A small server on 127.0.0.1 serves
// the page behind a one-time URL; each tab's terminal is an SSH session (ssh2, the user's own
// keys, the host key checked against known_hosts) over one tunnelled connection through the stream.
import { spawn } from "node:child_process";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import { DeviceStreamsError } from "../../runtime/errors.ts";
import { splitHostPort } from "../../runtime/http-endpoints.ts";
import type { Logger } from "../../runtime/log.ts";
import type { OptionSpecs, OptionValues } from "../../runtime/options.ts";
import { onShutdownSignals } from "../../runtime/shutdown.ts";
import type { StreamAccess } from "../stream-lookup.ts";
import { type Asset, type AssetName, loadWebAssets } from "./assets.ts";
import { startWebTerminalServer, type WebTerminalServer } from "./server.ts";
import { type SshAuth, sshAuth } from "./ssh-auth.ts";
import { runTerminalSession } from "./terminal-session.ts";
import { tunnelOpener } from "./tunnel.ts";

export const webOptionSpecs = {
  listen: {
    kind: "address",
    defaultHost: "127.0.0.1",
    default: "127.0.0.1:0",
    description: "web: serve the terminal page here, on a loopback address only; port 0 picks a free one",
  },
  user: { kind: "string", description: "web: the user to log in as on the device; else your own user name" },
  identity: {
    kind: "file",
    short: "i",
    description:
      "web: the private key to log in with; else your agent (`SSH_AUTH_SOCK`) and `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`",
  },
  "known-hosts": {
    kind: "file",
    description: "web: the known_hosts file the device's host key is checked against and an accepted one added to",
    placeholder: "FILE",
    default: "~/.ssh/known_hosts",
  },
  "host-key-alias": {
    kind: "string",
    description: "web: the device's name in known_hosts; else the stream's Device name",
  },
  "max-sessions": {
    kind: "integer",
    min: 1,
    max: 64,
    default: "4",
    description: "web: terminals (browser tabs) open at once",
  },
  open: { kind: "boolean", description: "web: also open the URL in your browser (`xdg-open`, `open`)" },
} satisfies OptionSpecs;

export type WebValues = OptionValues<typeof webOptionSpecs>;

function loopback(host: string): boolean {
  return host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const expandHome = (file: string) => (file.startsWith("~/") ? join(homedir(), file.slice(2)) : file);

function openInBrowser(url: string, log: Logger): void {
  const [cmd, ...args] =
    process.platform === "darwin"
      ? ["open", url]
      : process.platform === "win32"
        ? ["cmd", "/c", "start", "", url]
        : ["xdg-open", url];
  const child = spawn(cmd!, args, { stdio: "ignore", detached: true });
  child.on("error", (err) => log.warn("could not open a browser; open the URL yourself", { reason: err.message }));
  child.unref();
}

/** What needs no cluster: checked first, so bad flags, keys or page files fail before anything is opened. */
export interface WebSetup {
  host: string;
  port: number;
  auth: SshAuth;
  assets: Map<AssetName, Asset>;
}

export function prepareWeb(v: WebValues, log: Logger): WebSetup {
  const listen = splitHostPort(v.listen);
  const host = listen.host === "localhost" ? "127.0.0.1" : listen.host;
  if (!loopback(host)) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--listen ${v.listen}: the browser terminal serves a shell, so it listens on a loopback address only (127.0.0.1 or ::1); reach it from elsewhere through ssh -L, not the network`,
    );
  }
  const auth = sshAuth({
    user: v.user || userInfo().username,
    identity: v.identity,
    agentSocket: process.env.SSH_AUTH_SOCK || undefined,
    sshDir: join(homedir(), ".ssh"),
  });
  for (const line of auth.skipped) log.info("key skipped", { key: line });
  return { host, port: listen.port, auth, assets: loadWebAssets() };
}

export interface WebRequest {
  setup: WebSetup;
  access: StreamAccess;
  namespace: string;
  values: WebValues;
  log: Logger;
  /** Told each tunnelled connection's error (the plugin explains some once). */
  onTunnelError?: (err: Error) => void;
}

/** Starts the server and prints its URL. */
async function startWeb(r: WebRequest): Promise<WebTerminalServer> {
  const { setup, values: v } = r;
  const { auth } = setup;
  const stream = `${r.namespace}/${r.access.stream.metadata.name}`;
  const target = {
    openTunnel: tunnelOpener(
      r.access.relay,
      r.access.credential,
      (end) => {
        if (end.error) r.onTunnelError?.(end.error);
      },
      // On a stream of several services, the one named ssh; else the stream's own (first) service.
      r.access.stream.spec.services?.includes("ssh") ? { service: "ssh" } : undefined,
    ),
    auth,
    hostKeyName: v["host-key-alias"] || r.access.stream.spec.device,
    knownHostsFile: expandHome(v["known-hosts"]),
    stream,
  };
  const server = await startWebTerminalServer({
    host: setup.host,
    port: setup.port,
    assets: setup.assets,
    maxSessions: v["max-sessions"],
    log: r.log,
    session: (ws, size) => runTerminalSession(ws, size, target, r.log),
  });
  process.stdout.write(
    [
      `Browser terminal: ${auth.user}@${target.hostKeyName} through DeviceStream ${stream} (relay ${r.access.address} via ${r.access.via}). Open:`,
      "",
      `  ${server.url}`,
      "",
      "The URL opens once, in one browser (reloads keep working there); each tab is one SSH session. Ctrl-C to stop.",
      "",
    ].join("\n"),
  );
  if (v.open) openInBrowser(server.url, r.log);
  return server;
}

/** Runs until Ctrl-C, which ends every terminal (SSH sessions, tunnels) and exits. */
export async function runWeb(r: WebRequest): Promise<number> {
  const server = await startWeb(r);
  onShutdownSignals(
    r.log,
    async () => {
      await server.close();
      await r.access.close();
    },
    async () => {},
  );
  // Until Ctrl-C: the handler ends every session, then exits.
  return await new Promise<number>(() => {});
}
