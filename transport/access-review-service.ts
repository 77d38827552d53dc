// grpc-js definition of the RelayAccess service (proto/devicestreams/v1alpha1/access.proto),
// shared by the operator (server, on the hub's port) and relays (client), and the relay's client.
import { Client, type ServiceDefinition, type ServiceError } from "@grpc/grpc-js";
import { devicestreams } from "../proto/generated/devicestreams.js";
import { channelOptions, type KeepaliveOptions } from "../runtime/grpc-options.ts";
import { type ClientTls, channelCredentials } from "../runtime/tls.ts";

const pb = devicestreams.v1alpha1;

export type AccessReviewRequest = devicestreams.v1alpha1.IAccessReviewRequest;
export type AccessReviewResponse = devicestreams.v1alpha1.IAccessReviewResponse;

export const relayAccessServicePath = "/devicestreams.v1alpha1.RelayAccess";

export const relayAccessService = {
  review: {
    path: `${relayAccessServicePath}/Review`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: AccessReviewRequest) => Buffer.from(pb.AccessReviewRequest.encode(m).finish()),
    requestDeserialize: (b: Buffer): AccessReviewRequest => pb.AccessReviewRequest.decode(b),
    responseSerialize: (m: AccessReviewResponse) => Buffer.from(pb.AccessReviewResponse.encode(m).finish()),
    responseDeserialize: (b: Buffer): AccessReviewResponse => pb.AccessReviewResponse.decode(b),
  },
} satisfies ServiceDefinition;

export interface AccessReviewClientOptions {
  /** host:port of the operator's hub. */
  address: string;
  /** The operator CA, and the relay's own certificate (its identity) for mutual TLS. */
  tls: ClientTls;
  keepalive: KeepaliveOptions;
}

export class AccessReviewClient {
  private readonly client: Client;

  constructor(o: AccessReviewClientOptions) {
    this.client = new Client(o.address, channelCredentials(o.tls), channelOptions(o.keepalive));
  }

  review(token: string, timeoutMs: number): Promise<AccessReviewResponse> {
    const m = relayAccessService.review;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        { token },
        { deadline: Date.now() + timeoutMs },
        (err: ServiceError | null, res?: AccessReviewResponse) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
