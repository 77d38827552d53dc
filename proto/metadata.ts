// gRPC metadata keys of the wire contract, named once (as konnectivity's proto/header does).
export const metadataKeys = {
  /** `Bearer <token>`: the per-stream credential of the caller's role. */
  authorization: "authorization",
  /** On Accept: which tunnelled connection this call carries (decimal). */
  connectionId: "x-devicestreams-connection-id",
  /** On Attach: the agent's version, for status and debugging. */
  agentVersion: "x-devicestreams-agent-version",
} as const;

export const relayServicePath = "/devicestreams.v1alpha1.Relay";
