// One TCP connection to a Pod's port through the API server, as `kubectl port-forward` makes it:
// GET pods/NAME/portforward upgraded to a WebSocket with the kubelet's channel protocol
// (v4.channel.k8s.io). Every binary message starts with its channel: 0 carries the data, 1 the
// kubelet's error text; the first two bytes on each channel are the port, little-endian. One
// WebSocket carries one connection, and a message is one frame: the kubelet reads a frame as a
// message, so the channel byte and the data are sent together.
import type { Socket } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";
import WebSocket from "ws";
import { KubeApiError } from "./client.ts";

export const portForwardProtocol = "v4.channel.k8s.io";
export const dataChannel = 0;
export const errorChannel = 1;
/** Above this much unsent data the side feeding the WebSocket pauses. */
const highWaterBytes = 1 << 20;
const maxMessageBytes = 4 << 20;
const maxErrorBodyBytes = 16 << 10;

/** A message for `channel` carrying `data`: one copy, since the channel byte must lead the frame. */
export function channelMessage(channel: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.length + 1);
  out[0] = channel;
  out.set(data, 1);
  return out;
}

/** The two-byte port that opens each channel. */
export function portPreamble(channel: number, port: number): Buffer {
  const out = Buffer.alloc(3);
  out[0] = channel;
  out.writeUInt16LE(port, 1);
  return out;
}

/** Opens the WebSocket; an API server refusal becomes a KubeApiError with its Status message. */
export async function dialPortForward(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
  handshakeTimeoutMs = 30_000,
): Promise<PortForwardStream> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeApiError(0, "NoCluster", "no cluster in the kubeconfig");
  const base = cluster.server.replace(/\/+$/, "");
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/portforward`;
  const url = new URL(`${base}${path}?ports=${port}`);
  url.protocol = url.protocol === "http:" ? "ws:" : "wss:";
  const opts: WebSocket.ClientOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const ws = new WebSocket(url, [portForwardProtocol], {
    ...opts,
    handshakeTimeout: handshakeTimeoutMs,
    perMessageDeflate: false,
    maxPayload: maxMessageBytes,
  });
  const stream = new PortForwardStream(ws, { readsPreamble: true });
  return await new Promise<PortForwardStream>((resolve, reject) => {
    const what = `port-forward to Pod ${namespace}/${pod}:${port}`;
    ws.once("open", () => resolve(stream));
    ws.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        if (size < maxErrorBodyBytes) chunks.push(c);
        size += c.length;
      });
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8").slice(0, maxErrorBodyBytes);
        let message = body.trim();
        let reason = res.statusMessage ?? "";
        try {
          const status = JSON.parse(body) as { message?: string; reason?: string };
          message = status.message ?? message;
          reason = status.reason ?? reason;
        } catch {
          // not a Status: the text says what it can
        }
        reject(new KubeApiError(res.statusCode ?? 0, reason, `GET ${path}: ${res.statusCode} ${message}`));
      });
      res.on("error", reject);
    });
    ws.once("error", (err) =>
      reject(
        new KubeApiError(0, "Unreachable", `${what}: cannot reach the API server (${err.message})`, { cause: err }),
      ),
    );
  });
}

/**
 * One port-forward WebSocket as a byte stream for a socket given later. It listens from the start,
 * so nothing that arrives before `splice` is lost (it waits, and the WebSocket pauses past the
 * high-water mark). `readsPreamble`: the client's side, which skips the port on each channel.
 */
export class PortForwardStream {
  private readonly ws: WebSocket;
  private readonly preamble: number[];
  private socket: Socket | undefined;
  private onError: (text: string) => void = () => {};
  private waiting: Buffer[] = [];
  private waitingBytes = 0;
  private errorText = "";
  private closed = false;

  constructor(ws: WebSocket, o: { readsPreamble: boolean }) {
    this.ws = ws;
    this.preamble = o.readsPreamble ? [2, 2] : [0, 0];
    ws.on("message", (raw: Buffer, isBinary: boolean) => this.onMessage(raw, isBinary));
    ws.on("close", () => {
      this.closed = true;
      this.finish();
    });
    ws.on("error", (err) => {
      this.errorText ||= err.message;
      this.closed = true;
      this.finish();
    });
  }

  get open(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  /** Carries `socket` both ways with backpressure until either side ends. */
  splice(socket: Socket, onError: (text: string) => void): void {
    this.socket = socket;
    this.onError = onError;
    for (const chunk of this.waiting) this.deliver(chunk);
    this.waiting = [];
    this.waitingBytes = 0;
    if (this.closed) {
      this.finish();
      return;
    }
    this.ws.resume();
    let paused = false;
    const resumeWhenFlushed = () => {
      if (paused && this.ws.bufferedAmount < highWaterBytes / 2) {
        paused = false;
        socket.resume();
      }
    };
    socket.on("data", (chunk: Buffer) => {
      if (this.ws.readyState !== WebSocket.OPEN) return;
      this.ws.send(channelMessage(dataChannel, chunk), resumeWhenFlushed);
      if (this.ws.bufferedAmount > highWaterBytes) {
        paused = true;
        socket.pause();
      }
    });
    const closeWs = () => {
      if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    };
    socket.on("end", closeWs);
    socket.on("close", closeWs);
    socket.on("error", () => this.ws.terminate());
  }

  /** Drops the WebSocket (a stream never spliced, or shutting down). */
  terminate(): void {
    this.ws.terminate();
  }

  private onMessage(raw: Buffer, isBinary: boolean): void {
    if (!isBinary || raw.length === 0) return;
    const channel = raw[0]!;
    if (channel > errorChannel) return;
    let data = raw.subarray(1);
    const skip = Math.min(this.preamble[channel]!, data.length);
    this.preamble[channel]! -= skip;
    data = data.subarray(skip);
    if (data.length === 0) return;
    if (channel === errorChannel) {
      if (this.errorText.length < 4096) this.errorText += data.toString("utf8").slice(0, 4096);
      return;
    }
    if (this.socket) this.deliver(data);
    else {
      this.waiting.push(data);
      this.waitingBytes += data.length;
      if (this.waitingBytes > highWaterBytes) this.ws.pause();
    }
  }

  private deliver(data: Buffer): void {
    const socket = this.socket!;
    if (!socket.write(data)) {
      this.ws.pause();
      socket.once("drain", () => this.ws.resume());
    }
  }

  private finish(): void {
    const socket = this.socket;
    if (!socket) return;
    if (this.errorText) {
      this.onError(this.errorText);
      socket.destroy();
    } else socket.end();
  }
}
