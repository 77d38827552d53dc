// A served call that carries protobuf messages (Attach: a few control messages per tunnelled
// connection), on top of the byte call: DATA chunks are split into messages, each bounded in
// size before its bytes are held, and decoded; a message that does not decode fails the call.
import { EventEmitter } from "node:events";
import { status } from "@grpc/grpc-js";
import { frameMessage, MessageReader } from "./grpc-wire.ts";
import type { H2ServerCall } from "./h2-server-call.ts";

export interface MessageCodec<In, Out> {
  decode(bytes: Uint8Array): In;
  encode(message: Out): Uint8Array;
}

/** Events: `data` (a decoded message), `end`, `cancelled`, `close`, as H2ServerCall's. */
export class MessageServerCall<In, Out> extends EventEmitter {
  readonly call: H2ServerCall;
  private readonly codec: MessageCodec<In, Out>;

  constructor(call: H2ServerCall, codec: MessageCodec<In, Out>, maxMessageBytes: number) {
    super();
    this.call = call;
    this.codec = codec;
    const reader = new MessageReader(maxMessageBytes);
    call.on("data", (chunk: Buffer) => {
      const read = reader.push(chunk);
      if ("error" in read) return call.fail(read.code, read.error);
      for (const bytes of read.messages) {
        let message: In;
        try {
          message = codec.decode(bytes);
        } catch (err) {
          return call.fail(status.INTERNAL, `DS_PROTOCOL: a message that does not decode: ${(err as Error).message}`);
        }
        this.emit("data", message);
      }
    });
    for (const event of ["end", "cancelled", "close"]) call.on(event, () => this.emit(event));
    call.resume();
  }

  get metadata() {
    return this.call.metadata;
  }

  get cancelled(): boolean {
    return this.call.cancelled;
  }

  get writableEnded(): boolean {
    return this.call.writableEnded;
  }

  getPeer(): string {
    return this.call.getPeer();
  }

  write(message: Out): boolean {
    return this.call.write(frameMessage(this.codec.encode(message)));
  }

  end(): void {
    this.call.end();
  }

  fail(code: status, details: string): void {
    this.call.fail(code, details);
  }
}
