// One browser tab's terminal: its WebSocket on one side, an SSH shell through one tunnelled
// connection on the other. Bytes pass as they are, with backpressure both ways; the tab closing
// ends the SSH session and with it the tunnelled connection.
import type { WebSocket } from "ws";
import { DeviceStreamsError, describeError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import {
  encodeServerMessage,
  type PageMessage,
  parsePageMessage,
  type ServerMessage,
  type TerminalSize,
} from "./messages.ts";
import type { SshAuth } from "./ssh-auth.ts";
import { openShell, type Shell } from "./ssh-session.ts";
import type { OpenTunnel } from "./tunnel.ts";

export interface SessionTarget {
  openTunnel: OpenTunnel;
  auth: SshAuth;
  hostKeyName: string;
  knownHostsFile: string;
  /** `namespace/name`, for the page's title and the log. */
  stream: string;
}

/** Output queued in the WebSocket beyond this pauses the shell until it drains below the low mark. */
const highWaterBytes = 1024 * 1024;
const lowWaterBytes = 256 * 1024;
/** After the tab is gone: how long the SSH goodbye may take before the tunnel is cut. */
const closeGraceMs = 5_000;
/** Input typed before the shell opens is kept up to this much (a paste beyond it is dropped). */
const maxEarlyInputBytes = 64 * 1024;

export async function runTerminalSession(
  ws: WebSocket,
  size: TerminalSize,
  t: SessionTarget,
  log: Logger,
): Promise<void> {
  const send = (m: ServerMessage) => {
    if (ws.readyState === ws.OPEN) ws.send(encodeServerMessage(m));
  };
  let shell: Shell | undefined;
  let answer: ((accept: boolean) => void) | undefined;
  let pageGone = false;
  const tunnel = t.openTunnel();

  const early = { chunks: [] as Buffer[], bytes: 0 };
  const write = (data: Buffer) => {
    if (shell && !shell.channel.write(data)) {
      ws.pause();
      shell.channel.once("drain", () => ws.resume());
    }
  };
  const onControl = (m: PageMessage) => {
    if (m.type === "resize") {
      size = { cols: m.cols, rows: m.rows };
      shell?.resize(size);
    } else {
      answer?.(m.accept);
      answer = undefined;
    }
  };
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      if (shell) write(data);
      else if (early.bytes + data.length <= maxEarlyInputBytes) {
        // Typed while the connection opens: kept for the shell, as a terminal would.
        early.chunks.push(data);
        early.bytes += data.length;
      }
      return;
    }
    try {
      onControl(parsePageMessage(data.toString("utf8")));
    } catch (err) {
      log.warn("bad message from the page; closing its terminal", { reason: describeError(err) });
      const e = err as DeviceStreamsError;
      send({ type: "error", code: e.code, message: e.message });
      ws.close(1008, "bad message");
    }
  });
  ws.once("close", () => {
    pageGone = true;
    answer?.(false);
    if (shell) shell.client.end();
    else tunnel.socket.end();
    setTimeout(() => tunnel.socket.destroy(), closeGraceMs).unref();
  });

  const user = t.auth.user;
  send({ type: "hello", stream: t.stream, target: `${user}@${t.hostKeyName}` });
  send({ type: "status", text: `connecting to ${user}@${t.hostKeyName} through DeviceStream ${t.stream}…` });
  try {
    shell = await openShell({
      sock: tunnel.socket,
      tunnelError: tunnel.error,
      auth: t.auth,
      hostKeyName: t.hostKeyName,
      knownHostsFile: t.knownHostsFile,
      size,
      confirmUnknownKey: (key) =>
        new Promise<boolean>((resolve) => {
          if (pageGone) return resolve(false);
          answer = resolve;
          send({ type: "host-key", ...key });
        }),
    });
  } catch (err) {
    log.warn("terminal session failed", { reason: describeError(err) });
    const e = err instanceof DeviceStreamsError ? err : new DeviceStreamsError("DS_SSH_FAILED", (err as Error).message);
    send({ type: "error", code: e.code, message: e.message });
    ws.close(1011, "ssh failed");
    await tunnel.closed;
    return;
  }
  if (pageGone) {
    shell.client.end();
  } else {
    const added = shell.hostKeyAdded ? ` (added its host key to ${t.knownHostsFile})` : "";
    send({ type: "status", text: `connected to ${user}@${t.hostKeyName}${added}` });
    // The page may have been resized while the handshake ran.
    shell.resize(size);
    for (const chunk of early.chunks.splice(0)) write(chunk);
    log.info("terminal session open", { stream: t.stream, user });
  }
  const { channel, client } = shell;
  let exit: { status?: number; signal?: string } = {};
  const output = (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true }, () => {
      if (channel.isPaused() && ws.bufferedAmount < lowWaterBytes) channel.resume();
    });
    if (ws.bufferedAmount > highWaterBytes) channel.pause();
  };
  channel.on("data", output);
  channel.stderr.on("data", output);
  channel.on("exit", (status: number | null, signal?: string) => {
    exit = status === null ? { signal } : { status };
  });
  // The shell ended (exit, logout): the connection has nothing more to carry.
  channel.on("close", () => client.end());
  client.on("error", (err: Error) => {
    log.warn("ssh connection failed", { reason: describeError(tunnel.error() ?? err) });
    const e = tunnel.error() ?? err;
    send({ type: "error", code: e instanceof DeviceStreamsError ? e.code : "DS_SSH_FAILED", message: e.message });
  });
  await new Promise<void>((resolve) => client.once("close", () => resolve()));
  send({ type: "exit", ...exit });
  ws.close(1000, "session ended");
  const end = await tunnel.closed;
  log.info("terminal session closed", {
    stream: t.stream,
    sent: end.bytesOut,
    received: end.bytesIn,
    ...(end.error ? { reason: describeError(end.error) } : {}),
  });
}
