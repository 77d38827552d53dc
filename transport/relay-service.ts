// grpc-js definition of the Relay service. Connect and Accept carry already-encoded Frames
// (see frames.ts), so their serializers pass Buffers through untouched: no per-message
// protobuf work anywhere on the byte path. What the relay receives is adopted for in-place
// framing (grpc-framing.ts), so a frame it forwards is not copied again.
import type { ServiceDefinition } from "@grpc/grpc-js";
import { devicestreams } from "../proto/generated/devicestreams.js";
import { relayServicePath } from "../proto/metadata.ts";
import { adoptReceived } from "../proto/prefix-room.ts";
import "./grpc-framing.ts"; // frames tunnel frames in place once installed

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
    requestDeserialize: adoptReceived,
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
