// grpc-js definition of the Hub service (proto/devicestreams/v1alpha1/hub.proto), shared by the
// operator (server) and the agent (client). Control messages are small: plain protobuf codecs.
import type { ServiceDefinition } from "@grpc/grpc-js";
import { devicestreams } from "../proto/generated/devicestreams.js";

const pb = devicestreams.v1alpha1;

export type EnrollRequest = devicestreams.v1alpha1.IEnrollRequest;
export type EnrollResponse = devicestreams.v1alpha1.IEnrollResponse;
export type AgentControl = devicestreams.v1alpha1.IAgentControl;
export type HubControl = devicestreams.v1alpha1.IHubControl;
export type Offer = devicestreams.v1alpha1.IOffer;

export const hubServicePath = "/devicestreams.v1alpha1.Hub";

export const hubService = {
  enroll: {
    path: `${hubServicePath}/Enroll`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: EnrollRequest) => Buffer.from(pb.EnrollRequest.encode(m).finish()),
    requestDeserialize: (b: Buffer): EnrollRequest => pb.EnrollRequest.decode(b),
    responseSerialize: (m: EnrollResponse) => Buffer.from(pb.EnrollResponse.encode(m).finish()),
    responseDeserialize: (b: Buffer): EnrollResponse => pb.EnrollResponse.decode(b),
  },
  session: {
    path: `${hubServicePath}/Session`,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: AgentControl) => Buffer.from(pb.AgentControl.encode(m).finish()),
    requestDeserialize: (b: Buffer): AgentControl => pb.AgentControl.decode(b),
    responseSerialize: (m: HubControl) => Buffer.from(pb.HubControl.encode(m).finish()),
    responseDeserialize: (b: Buffer): HubControl => pb.HubControl.decode(b),
  },
} satisfies ServiceDefinition;
