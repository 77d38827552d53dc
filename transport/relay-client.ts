// The relay's client stub, used by both edges: the client opens Connect calls, the agent Attach
// and Accept calls. One channel per relay, so every tunnelled connection is an HTTP/2 stream on
// one TLS connection, each with its own flow-control window.
import { Client, credentials, Metadata } from "@grpc/grpc-js";
import { metadataKeys } from "../proto/metadata.ts";
import { channelOptions, type KeepaliveOptions } from "../runtime/grpc-options.ts";
import { type ClientTls, channelCredentials } from "../runtime/tls.ts";
import { type ProxySettings, proxiedChannel } from "./proxy.ts";
import { type AgentMessage, type RelayMessage, relayService } from "./relay-service.ts";
import type { FrameCall } from "./tcp-bridge.ts";

export interface RelayClientOptions {
  /** host:port of the relay. */
  address: string;
  tls: ClientTls;
  keepalive: KeepaliveOptions;
  /** TLS name to expect when it differs from the address's host (SNI and certificate check). */
  serverName?: string;
  /** An HTTP proxy to CONNECT through (transport/proxy.ts). */
  proxy?: ProxySettings;
}

/** The source side's credential: the stream's source token, or a user's Kubernetes token (fetched per call). */
export type SourceCredential = string | { kubernetesToken: () => Promise<string> };

/** Which of the stream's services a connection reaches; port 0 or unset: the service's own. */
export interface ServiceChoice {
  service: string;
  port?: number;
}

/** The call's metadata naming the service; none when unset (the relay takes the stream's first). */
function withChoice(md: Metadata, choice: ServiceChoice | undefined): Metadata {
  if (!choice) return md;
  md.set(metadataKeys.service, choice.service);
  if (choice.port) md.set(metadataKeys.port, String(choice.port));
  return md;
}

export class RelayClient {
  private readonly client: Client;

  constructor(o: RelayClientOptions) {
    const options = channelOptions(o.keepalive);
    if (o.serverName) options["grpc.ssl_target_name_override"] = o.serverName;
    const channel = proxiedChannel(o.address, o.proxy, o.serverName);
    this.client = new Client(channel.address, channelCredentials(o.tls), { ...options, ...channel.options });
  }

  private static auth(token: string): Metadata {
    const md = new Metadata();
    md.set(metadataKeys.authorization, `Bearer ${token}`);
    return md;
  }

  /**
   * A tunnelled connection, as the source: with the stream's source token, or a user's own
   * Kubernetes token; to `choice`, or to the stream's first service.
   */
  connect(credential: SourceCredential, choice?: ServiceChoice): FrameCall {
    const m = relayService.connect;
    if (typeof credential === "string") {
      return this.client.makeBidiStreamRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        withChoice(RelayClient.auth(credential), choice),
      );
    }
    // Asked for per call: an exec or OIDC plugin's token expires and is renewed while the plugin runs.
    const perCall = credentials.createFromMetadataGenerator((_params, done) => {
      credential.kubernetesToken().then(
        (token) => {
          const md = new Metadata();
          md.set(metadataKeys.kubernetesToken, token);
          done(null, md);
        },
        (err: Error) => done(err),
      );
    });
    return this.client.makeBidiStreamRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      withChoice(new Metadata(), choice),
      { credentials: perCall },
    );
  }

  accept(token: string, connectionId: number): FrameCall {
    const m = relayService.accept;
    const md = RelayClient.auth(token);
    md.set(metadataKeys.connectionId, String(connectionId));
    return this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md);
  }

  attach(token: string, agentVersion: string) {
    const m = relayService.attach;
    const md = RelayClient.auth(token);
    md.set(metadataKeys.agentVersion, agentVersion);
    return this.client.makeBidiStreamRequest<AgentMessage, RelayMessage>(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      md,
    );
  }

  close(): void {
    this.client.close();
  }
}
