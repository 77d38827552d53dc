// Channel and server options shared by every component, so keepalive and flow control agree
// on both ends of each hop.
import type { ChannelOptions, Server, ServerCredentials } from "@grpc/grpc-js";

export interface KeepaliveOptions {
  /** Idle time before a ping is sent. */
  timeMs: number;
  /** How long a ping may go unanswered before the peer is declared dead. */
  timeoutMs: number;
}

export const defaultKeepalive: KeepaliveOptions = { timeMs: 10_000, timeoutMs: 5_000 };

/** Larger frames and windows move bytes far faster than gRPC's 64 KiB defaults. */
export const maxFrameBytes = 256 * 1024;
// Per-stream HTTP/2 window: bounds how much one stalled connection can hold in flight, and how much
// bulk can queue ahead of an interactive connection on the same HTTP/2 connection (docs/benchmarks.md).
export const flowControlWindowBytes = 256 * 1024;
// Per-connection HTTP/2 window, shared by all of a connection's streams.
export const sessionWindowBytes = 32 * 1024 * 1024;
const messageOverhead = 64;
/** The largest gRPC message either end sends or takes: a whole tunnel frame and its header. */
export const maxMessageBytes = maxFrameBytes + messageOverhead;

export function channelOptions(keepalive: KeepaliveOptions): ChannelOptions {
  return {
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": maxFrameBytes + messageOverhead,
    "grpc.max_send_message_length": maxFrameBytes + messageOverhead,
    "grpc-node.flow_control_window": flowControlWindowBytes,
    // Our own reconnect loops decide when to retry; a call must fail fast, not queue.
    "grpc.enable_retries": 0,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 5_000,
  };
}

export function serverOptions(keepalive: KeepaliveOptions): ChannelOptions {
  return {
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
    "grpc.max_receive_message_length": maxFrameBytes + messageOverhead,
    "grpc.max_send_message_length": maxFrameBytes + messageOverhead,
    // Clients ping on their own schedule; let them (the default would answer GOAWAY too_many_pings).
    "grpc.http2.min_ping_interval_without_data_ms": Math.min(keepalive.timeMs, 5_000),
    "grpc.max_concurrent_streams": 100_000,
  };
}

/**
 * grpc-js builds its HTTP/2 server from the credentials' constructor options and applies no
 * flow-control option of its own on the server side, so the receive window is set here. The
 * relay receives every tunnelled byte, in both directions: with the 64 KiB default each stream
 * waits a round trip per 64 KiB.
 */
export function withServerWindow(creds: ServerCredentials, windowBytes = flowControlWindowBytes): ServerCredentials {
  const internal = creds as unknown as { _getConstructorOptions(): Record<string, unknown> | null };
  const base = internal._getConstructorOptions.bind(creds);
  internal._getConstructorOptions = () => ({
    ...base(),
    settings: { initialWindowSize: windowBytes, maxConcurrentStreams: 100_000 },
    // grpc-js disables Nagle on its client sockets but not on accepted ones; small frames
    // (WINDOW_UPDATE, pings, short replies) must not wait for an ACK.
    noDelay: true,
  });
  return creds;
}

/**
 * The connection-level HTTP/2 window is separate from the per-stream one and grpc-js leaves it at
 * 64 KiB on servers; all streams of a connection share it, so it caps the relay's intake to one
 * window per round trip however many connections there are. Widen it on every new session.
 * Call after bindAsync (grpc-js creates its HTTP/2 servers there).
 */
export function widenSessionWindows(server: Server, windowBytes = sessionWindowBytes): void {
  const servers = (server as unknown as { http2Servers?: Map<import("node:events").EventEmitter, unknown> })
    .http2Servers;
  if (!servers) throw new Error("grpc-js internals changed: Server.http2Servers is gone; update widenSessionWindows");
  for (const h2 of servers.keys()) {
    h2.on("session", (session: import("node:http2").Http2Session) => {
      session.once("connect", () => session.setLocalWindowSize(windowBytes));
      if (!session.connecting) session.setLocalWindowSize(windowBytes);
    });
  }
}
