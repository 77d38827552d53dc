// Stdio mode, for ssh's ProxyCommand: stdin and stdout are the two halves of one tunnelled
// connection. EOF on stdin is carried as FIN; the far side's FIN ends stdout.
import { Duplex } from "node:stream";
import type { DeviceStreamsError } from "../runtime/errors.ts";
import { maxFrameBytes } from "../runtime/grpc-options.ts";
import { relayFromFlags } from "../transport/call-error.ts";
import type { RelayClient, ServiceChoice, SourceCredential } from "../transport/relay-client.ts";
import { bridge } from "../transport/tcp-bridge.ts";

export function tunnelStdio(
  relay: RelayClient,
  credential: SourceCredential,
  /** The service to reach; unset: the stream's first. */
  choice?: ServiceChoice,
): Promise<DeviceStreamsError | undefined> {
  const stdio = Duplex.from({ readable: process.stdin, writable: process.stdout });
  return new Promise((resolve) => {
    bridge(stdio, relay.connect(credential, choice), {
      maxFrameBytes,
      side: "client",
      relay: relayFromFlags,
      onEnd: (end) => resolve(end.error),
    });
  });
}
