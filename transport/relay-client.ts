// The relay's client, used by both edges: the client opens Connect calls, the agent Attach and
// Accept calls. It speaks gRPC on node:http2 itself (docs/adr/0002): one HTTP/2 session per
// relay, so every tunnelled connection is a stream on one TLS connection with its own window.
import type { OutgoingHttpHeaders } from "node:http2";
import { status } from "@grpc/grpc-js";
import { devicestreams } from "../proto/generated/devicestreams.js";
import { metadataKeys, relayServicePath } from "../proto/metadata.ts";
import { DeviceStreamsError, errorDetail } from "../runtime/errors.ts";
import { type KeepaliveOptions, maxMessageBytes } from "../runtime/grpc-options.ts";
import type { ClientTls } from "../runtime/tls.ts";
import { version } from "../runtime/version.ts";
import { H2ClientCall, type MethodSpec } from "./h2-client-call.ts";
import { H2Channel, NoConnection } from "./h2-session.ts";
import { callStatus } from "./h2-status.ts";
import type { ProxySettings } from "./proxy.ts";
import type { AgentMessage, RelayMessage } from "./relay-service.ts";

const pb = devicestreams.v1alpha1;

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

/** Metadata naming the service; none when unset (the relay takes the stream's first). */
function choiceMetadata(choice: ServiceChoice | undefined): Record<string, string> {
  if (!choice) return {};
  return choice.port
    ? { [metadataKeys.service]: choice.service, [metadataKeys.port]: String(choice.port) }
    : { [metadataKeys.service]: choice.service };
}

export interface CallOptions {
  /** The call fails DEADLINE_EXCEEDED after this long; the relay is told so (grpc-timeout). */
  deadlineMs?: number;
}

/** The agent's Attach call: its control messages, decoded. Connect and Accept carry tunnel frames. */
export type AttachCall = H2ClientCall<AgentMessage, RelayMessage>;

const frames = (method: string): MethodSpec<Buffer, Buffer> => ({
  path: `${relayServicePath}/${method}`,
  serialize: (frame) => frame,
  deserialize: (frame) => frame,
  maxMessageBytes,
});
const methods = {
  connect: frames("Connect"),
  accept: frames("Accept"),
  attach: {
    path: `${relayServicePath}/Attach`,
    serialize: (m) => pb.AgentMessage.encode(m).finish(),
    deserialize: (b) => pb.RelayMessage.decode(b),
    maxMessageBytes,
  } satisfies MethodSpec<AgentMessage, RelayMessage>,
};

const userAgent = `devicestreams/${version} (node:http2)`;
const bearer = (token: string) => ({ [metadataKeys.authorization]: `Bearer ${token}` });

export class RelayClient {
  private readonly channel: H2Channel;

  constructor(o: RelayClientOptions) {
    this.channel = new H2Channel(o);
  }

  /**
   * A tunnelled connection, as the source: with the stream's source token, or a user's own
   * Kubernetes token; to `choice`, or to the stream's first service.
   */
  connect(
    credential: SourceCredential,
    choice?: ServiceChoice,
    options: CallOptions = {},
  ): H2ClientCall<Buffer, Buffer> {
    const chosen = choiceMetadata(choice);
    // Asked for per call: an exec or OIDC plugin's token expires and is renewed while the plugin runs.
    const metadata =
      typeof credential === "string"
        ? { ...bearer(credential), ...chosen }
        : credential.kubernetesToken().then((token) => ({ [metadataKeys.kubernetesToken]: token, ...chosen }));
    return this.call(methods.connect, metadata, options);
  }

  accept(token: string, connectionId: number, options: CallOptions = {}): H2ClientCall<Buffer, Buffer> {
    return this.call(methods.accept, { ...bearer(token), [metadataKeys.connectionId]: String(connectionId) }, options);
  }

  attach(token: string, agentVersion: string, options: CallOptions = {}): AttachCall {
    return this.call(methods.attach, { ...bearer(token), [metadataKeys.agentVersion]: agentVersion }, options);
  }

  /** No new calls; open ones run to their end. */
  close(): void {
    this.channel.close();
  }

  private call<Req, Res>(
    method: MethodSpec<Req, Res>,
    metadata: OutgoingHttpHeaders | Promise<OutgoingHttpHeaders>,
    options: CallOptions,
  ): H2ClientCall<Req, Res> {
    const call = new H2ClientCall(method, options);
    Promise.all([this.channel.session(), metadata]).then(
      ([session, md]) => {
        const stream = call.start(session, { ...md, "user-agent": userAgent });
        if (stream) this.channel.track(session, stream);
      },
      (err: Error) => call.fail(startFailure(err)),
    );
    return call;
  }
}

/** Why a call never started: no connection (grpc-js's words), or no credential from the plugin. */
function startFailure(err: Error) {
  if (err instanceof NoConnection) {
    const cause = err.lastError;
    // A proxy's refusal is named by proxy.ts; the DS_ code passes through call-error.ts as it is.
    if (cause instanceof DeviceStreamsError)
      return callStatus(status.UNAVAILABLE, errorDetail(cause.code, cause.message));
    return callStatus(status.UNAVAILABLE, err.message);
  }
  if (err instanceof DeviceStreamsError) return callStatus(status.UNAUTHENTICATED, errorDetail(err.code, err.message));
  return callStatus(status.UNKNOWN, `Getting metadata from plugin failed with error: ${err.message}`);
}
