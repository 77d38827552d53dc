// One tunnelled connection to the device's service as an in-process Duplex, for ssh2: the same
// bridge as `connect -L` and `ssh-proxy` (transport/tcp-bridge.ts), with one end of a duplex pair
// in place of a socket, so no local port is opened for it.
import { type Duplex, duplexPair } from "node:stream";
import { maxFrameBytes } from "../../runtime/grpc-options.ts";
import { relayFromFlags } from "../../transport/call-error.ts";
import type { RelayClient, ServiceChoice, SourceCredential } from "../../transport/relay-client.ts";
import { type BridgeEnd, bridge } from "../../transport/tcp-bridge.ts";

export interface Tunnel {
  /** ssh2's end. */
  socket: Duplex;
  /** Why the tunnel ended, once it has, with an error. */
  error(): Error | undefined;
  /** Both directions closed (cleanly or not). */
  closed: Promise<BridgeEnd>;
}

export type OpenTunnel = () => Tunnel;

export function tunnelOpener(
  relay: RelayClient,
  credential: SourceCredential,
  onEnd?: (end: BridgeEnd) => void,
  choice?: ServiceChoice,
): OpenTunnel {
  return () => {
    const [socket, bridged] = duplexPair();
    let ended: BridgeEnd | undefined;
    const closed = new Promise<BridgeEnd>((resolve) => {
      bridge(bridged, relay.connect(credential, choice), {
        maxFrameBytes,
        side: "client",
        relay: relayFromFlags,
        onEnd: (end) => {
          ended = end;
          onEnd?.(end);
          resolve(end);
        },
      });
    });
    return { socket, error: () => ended?.error, closed };
  };
}
