// A routed connection's byte path: the bytes read before routing are replayed to the upstream,
// then both directions are `pipe`d (backpressure, no JavaScript per byte). A FIN is passed on
// (half-close works as TCP's does); a reset or error on either side resets the other.
import type { Socket } from "node:net";
import type { GatewayMetrics } from "./metrics.ts";

// TCP keepalive on both legs: a peer that vanished (power cut, NAT timeout) frees its slot.
const keepAliveMs = 60_000;

/** `clientEnded`: the client's FIN came with its ClientHello, before the upstream was connected. */
export function splice(
  client: Socket,
  upstream: Socket,
  replay: Buffer[],
  clientEnded: boolean,
  metrics: GatewayMetrics,
): void {
  client.setKeepAlive(true, keepAliveMs);
  upstream.setKeepAlive(true, keepAliveMs);
  // The handshake phase's listeners go; this phase handles end and error itself.
  client.removeAllListeners("end");
  client.removeAllListeners("error");
  let failed = false;
  const fail = () => {
    if (failed) return;
    failed = true;
    client.resetAndDestroy();
    upstream.resetAndDestroy();
  };
  client.on("error", fail);
  upstream.on("error", fail);
  // A side that closed with an error takes the other down; a clean close ends the other's writes.
  const follow = (other: Socket) => (hadError: boolean) => {
    if (hadError) fail();
    else if (!other.destroyed) other.end();
  };
  client.once("close", follow(upstream));
  upstream.once("close", follow(client));
  // Counted once, at the end, from the sockets' own counters: nothing per chunk.
  upstream.once("close", () => {
    metrics.bytes.inc({ direction: "upstream" }, client.bytesRead);
    metrics.bytes.inc({ direction: "downstream" }, upstream.bytesRead);
    metrics.connectionsClosed.inc({ reason: failed ? "reset" : "completed" });
  });
  for (const chunk of replay) upstream.write(chunk);
  if (clientEnded) upstream.end();
  else client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}
