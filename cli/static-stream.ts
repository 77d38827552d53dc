// Everything one stream needs without a cluster: a CA, the relay's serving certificate, both
// credentials and relay.json, written to a folder with owner-only permissions. The quick start
// and the data-plane tests use it; in a cluster the operator makes the same from a DeviceStream.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type StreamConfig, streamConfigFile } from "../relay/contract.ts";
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from "../runtime/pki.ts";
import { newToken, tokenSha256 } from "../transport/credentials.ts";

export interface StaticStream {
  dir: string;
  caCert: string;
  relayCert: string;
  relayKey: string;
  relayConfig: string;
  sourceTokenFile: string;
  destinationTokenFile: string;
  sourceToken: string;
  destinationToken: string;
  ca: KeyPairPem;
}

export interface StaticStreamOptions {
  stream?: string;
  service: string;
  /** Every service of the stream, `service` first; unset: `service` alone. */
  services?: string[];
  /** Names and addresses the relay's certificate is valid for. */
  dnsNames?: string[];
  ipAddresses?: string[];
  expiresAt?: Date;
  /** Reuse a CA (several streams under one authority). */
  ca?: KeyPairPem;
}

export async function writeStaticStream(dir: string, o: StaticStreamOptions): Promise<StaticStream> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = o.ca ?? (await createCertificateAuthority("devicestreams static CA"));
  const relay = await issueCertificate(ca, {
    commonName: "devicestreams-relay",
    dnsNames: o.dnsNames ?? ["localhost"],
    ipAddresses: o.ipAddresses ?? ["127.0.0.1"],
    usage: "server",
  });
  const sourceToken = newToken("source");
  const destinationToken = newToken("destination");
  const config: StreamConfig = {
    version: 1,
    stream: o.stream ?? "static/demo",
    service: o.service,
    ...(o.services && o.services.length > 1 ? { services: o.services } : {}),
    ...(o.expiresAt ? { expiresAt: o.expiresAt.toISOString() } : {}),
    credentials: [
      { role: "source", sha256: tokenSha256(sourceToken) },
      { role: "destination", sha256: tokenSha256(destinationToken) },
    ],
  };
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };
  return {
    dir,
    ca,
    caCert: file("ca.crt", ca.certPem),
    relayCert: file("relay.crt", relay.certPem),
    relayKey: file("relay.key", relay.keyPem),
    relayConfig: file("relay.json", streamConfigFile(config)),
    sourceTokenFile: file("source.token", sourceToken),
    destinationTokenFile: file("destination.token", destinationToken),
    sourceToken,
    destinationToken,
  };
}
