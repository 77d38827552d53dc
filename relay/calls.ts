// What the relay needs of a served call (transport/h2-server-call.ts), so that the pairing and the
// splice can be tested with in-process stand-ins (test/helpers/fake-streams.ts).
import type { EventEmitter } from "node:events";
import type { Metadata, status } from "@grpc/grpc-js";
import type { AgentMessage, RelayMessage } from "../transport/relay-service.ts";

interface ServedCall extends EventEmitter {
  readonly metadata: Metadata;
  readonly cancelled: boolean;
  readonly writableEnded: boolean;
  getPeer(): string;
  /** Ends the call with OK. */
  end(): void;
  /** Ends the call with an error status; `details` is `DS_CODE: message`. */
  fail(code: status, details: string): void;
}

/** Connect and Accept: the tunnel's frames as DATA chunks, forwarded as they came. */
export interface ByteCall extends ServedCall {
  readonly destroyed: boolean;
  readonly readableEnded: boolean;
  write(framed: Buffer): boolean;
  /** Drops the call's metadata: read only while the call is admitted and paired. */
  releaseMetadata?(): void;
  /** Sends the response headers now, before any frame (the client reads them as "connected"). */
  sendMetadata(): void;
  pause(): void;
  resume(): void;
}

/** Attach: decoded control messages. */
export interface AttachCall extends ServedCall {
  write(message: RelayMessage): boolean;
}

export type { AgentMessage, RelayMessage };
