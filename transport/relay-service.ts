// grpc-js definition of the Relay service: the generated stubs' shape, which the relay's own
// node:http2 server (Attach's codec) and the interop tests use. Connect and Accept carry
// already-encoded Frames (see frames.ts), so their serializers pass Buffers through untouched.
import type { ServiceDefinition } from "@grpc/grpc-js";
import { devicestreams } from "../proto/generated/devicestreams.js";
import { relayServicePath } from "../proto/metadata.ts";

const pb = devicestreams.v1alpha1;

export type AgentMessage = devicestreams.v1alpha1.IAgentMessage;
export type RelayMessage = devicestreams.v1alpha1.IRelayMessage;

const passthrough = (b: Buffer): Buffer => b;

function frameMethod(name: string) {
  return {
    path: `${relayServicePath}/${name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: passthrough,
    requestDeserialize: passthrough,
    responseSerialize: passthrough,
    responseDeserialize: passthrough,
  };
}

export const relayService = {
  attach: {
    path: `${relayServicePath}/Attach`,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: AgentMessage) => Buffer.from(pb.AgentMessage.encode(m).finish()),
    requestDeserialize: (b: Buffer): AgentMessage => pb.AgentMessage.decode(b),
    responseSerialize: (m: RelayMessage) => Buffer.from(pb.RelayMessage.encode(m).finish()),
    responseDeserialize: (b: Buffer): RelayMessage => pb.RelayMessage.decode(b),
  },
  connect: frameMethod("Connect"),
  accept: frameMethod("Accept"),
} satisfies ServiceDefinition;
