// gRPC metadata keys of the wire contract, named once (as konnectivity's proto/header does).
export const metadataKeys = {
  /** `Bearer <token>`: the per-stream credential of the caller's role. */
  authorization: "authorization",
  /**
   * On Connect, instead of `authorization`: the user's own Kubernetes bearer token (bare, no
   * `Bearer `), which the relay has the operator review. A key of its own, so that the relay
   * never has to guess which kind of credential a token is.
   */
  kubernetesToken: "x-devicestreams-kubernetes-token",
  /** On Accept: which tunnelled connection this call carries (decimal). */
  connectionId: "x-devicestreams-connection-id",
  /**
   * On Connect: which of the stream's services the connection reaches (a service name). Absent:
   * the stream's first service, as clients that predate several services per stream expect.
   */
  service: "x-devicestreams-service",
  /** On Connect, with `service`: the port within a service of several ports (decimal, 1-65535). */
  port: "x-devicestreams-port",
  /** On Attach: the agent's version, for status and debugging. */
  agentVersion: "x-devicestreams-agent-version",
} as const;

export const relayServicePath = "/devicestreams.v1alpha1.Relay";
