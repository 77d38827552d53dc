// The local side of `connect`: one listener per `-L` (each to its service) and the SOCKS5 / HTTP
// CONNECT listener, all through one relay and credential. Either all listen or none does.
import { DeviceStreamsError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { RelayClient, SourceCredential } from "../transport/relay-client.ts";
import { describeForward, type ForwardSpec } from "./forward-spec.ts";
import { forwardLocalPort } from "./local-port.ts";
import { listenSocks } from "./socks-listener.ts";

export interface ForwardsOptions {
  relay: RelayClient;
  credential: SourceCredential;
  forwards: ForwardSpec[];
  socks?: { host: string; port: number; maxClients: number; handshakeTimeoutMs: number };
  log: Logger;
  onError?(err: Error): void;
}

export interface Forwards {
  /** What listens where, one line each, as `listening on …` would say it. */
  listening: string[];
  close(): Promise<void>;
}

export async function startForwards(o: ForwardsOptions): Promise<Forwards> {
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    await Promise.all(closers.map((c) => c()));
  };
  const listening: string[] = [];
  try {
    for (const f of o.forwards) {
      const fwd = await listen(`-L ${f.host}:${f.port}`, () =>
        forwardLocalPort(o.relay, o.credential, f.host, f.port, o.log, o.onError, f.choice),
      );
      closers.push(fwd.close);
      listening.push(describeForward(f, fwd.port));
    }
    if (o.socks) {
      const s = o.socks;
      const socks = await listen(`--socks5 ${s.host}:${s.port}`, () =>
        listenSocks({
          host: s.host,
          port: s.port,
          open: (choice) => o.relay.connect(o.credential, choice),
          maxClients: s.maxClients,
          handshakeTimeoutMs: s.handshakeTimeoutMs,
          log: o.log,
          onError: o.onError,
        }),
      );
      closers.push(socks.close);
      const host = s.host.includes(":") ? `[${s.host}]` : s.host;
      listening.push(`${host}:${socks.port} (SOCKS5 and HTTP CONNECT; the host names the service)`);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { listening, close };
}

/** Listens, or says which flag's address could not be taken and why. */
async function listen<T>(flag: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === "EADDRINUSE" ? "; the port is taken: choose another, or 0 for any free one" : "";
    throw new DeviceStreamsError("DS_USAGE", `${flag}: cannot listen: ${e.message}${hint}`, { cause: err });
  }
}
