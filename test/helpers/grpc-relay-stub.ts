// A grpc-js server implementing the Relay service with the definitions of transport/relay-service.ts
// (the generated protobuf code for Attach), for the interop tests of our node:http2 relay client:
// whatever it accepts and answers, a grpc-js peer does. Real TLS on loopback, and a TCP forwarder
// that a test can freeze (pings go unanswered) or cut (the connection is lost).
import { connect, createServer, type Socket } from "node:net";
import { Server, type ServerDuplexStream, type ServiceDefinition } from "@grpc/grpc-js";
import { serverOptions, withServerWindow } from "../../runtime/grpc-options.ts";
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from "../../runtime/pki.ts";
import { serverCredentials } from "../../runtime/tls.ts";
import { type AgentMessage, type RelayMessage, relayService } from "../../transport/relay-service.ts";

export type FrameServerCall = ServerDuplexStream<Buffer, Buffer>;
export type AttachServerCall = ServerDuplexStream<AgentMessage, RelayMessage>;

export interface StubHandlers {
  connect?(call: FrameServerCall): void;
  accept?(call: FrameServerCall): void;
  attach?(call: AttachServerCall): void;
}

export interface StubRelay {
  address: string;
  port: number;
  ca: KeyPairPem;
  close(): void;
}

export interface StubOptions {
  /** Ask for client certificates from this CA (optional, as the relay asks). */
  clientCaPem?: string;
  /** grpc-js server options beyond the relay's own (runtime/grpc-options.ts). */
  options?: Record<string, number>;
  /** The server certificate's validity; negative: already expired. */
  validityMs?: number;
}

export async function startStubRelay(handlers: StubHandlers, o: StubOptions = {}): Promise<StubRelay> {
  const ca = await createCertificateAuthority("stub relay CA");
  const cert = await issueCertificate(ca, {
    commonName: "relay",
    ipAddresses: ["127.0.0.1"],
    dnsNames: ["localhost", "relay.example"],
    usage: "server",
    validityMs: o.validityMs,
  });
  const server = new Server({ ...serverOptions({ timeMs: 60_000, timeoutMs: 20_000 }), ...o.options });
  const unimplemented = () => {};
  server.addService(relayService as unknown as ServiceDefinition, {
    connect: handlers.connect ?? unimplemented,
    accept: handlers.accept ?? unimplemented,
    attach: handlers.attach ?? unimplemented,
  });
  const creds = serverCredentials({ ...cert, clientCaPem: o.clientCaPem, clientCertOptional: !!o.clientCaPem });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", withServerWindow(creds), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, port, ca, close: () => server.forceShutdown() };
}

export interface Forwarder {
  address: string;
  /** TCP connections made through it so far. */
  connections: number;
  /** Stops moving bytes both ways; the connections stay open (a frozen peer, a dead link). */
  freeze(): void;
  /** Destroys every connection (the peer lost); new ones are still forwarded. */
  cut(): void;
  close(): void;
}

export async function startForwarder(port: number): Promise<Forwarder> {
  const pairs: [Socket, Socket][] = [];
  let frozen = false;
  const server = createServer((inbound) => {
    f.connections++;
    const outbound = connect({ host: "127.0.0.1", port });
    pairs.push([inbound, outbound]);
    for (const [from, to] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      from.on("data", (chunk: Buffer) => {
        if (!frozen) to.write(chunk);
      });
      from.on("error", () => to.destroy());
      from.on("close", () => to.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const f: Forwarder = {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    connections: 0,
    freeze: () => {
      frozen = true;
    },
    cut: () => {
      frozen = false;
      for (const [a, b] of pairs.splice(0)) {
        a.destroy();
        b.destroy();
      }
    },
    close: () => {
      f.cut();
      server.close();
    },
  };
  return f;
}
