// The hub's client stub for agents. Enrolment rides a server-TLS-only channel (the device has no
// certificate yet); the control session rides an mTLS channel with the device certificate.
import { Client, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { channelOptions, type KeepaliveOptions } from "../runtime/grpc-options.ts";
import { type ClientTls, channelCredentials } from "../runtime/tls.ts";
import {
  type AgentControl,
  type EnrollRequest,
  type EnrollResponse,
  type HubControl,
  hubService,
} from "./hub-service.ts";
import { type ProxySettings, proxiedChannel } from "./proxy.ts";

export interface HubClientOptions {
  /** host:port of the hub. */
  address: string;
  tls: ClientTls;
  keepalive: KeepaliveOptions;
  serverName?: string;
  /** An HTTP proxy to CONNECT through (transport/proxy.ts). */
  proxy?: ProxySettings;
}

export class HubClient {
  private readonly client: Client;

  constructor(o: HubClientOptions) {
    const options = channelOptions(o.keepalive);
    if (o.serverName) options["grpc.ssl_target_name_override"] = o.serverName;
    const channel = proxiedChannel(o.address, o.proxy, o.serverName);
    this.client = new Client(channel.address, channelCredentials(o.tls), { ...options, ...channel.options });
  }

  enroll(req: EnrollRequest, timeoutMs = 30_000): Promise<EnrollResponse> {
    const m = hubService.enroll;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        req,
        { deadline: Date.now() + timeoutMs },
        (err: ServiceError | null, res?: EnrollResponse) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  session(): ClientDuplexStream<AgentControl, HubControl> {
    const m = hubService.session;
    return this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
  }

  close(): void {
    this.client.close();
  }
}
