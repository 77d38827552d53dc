// A pool relay (--streams-dir) on loopback and its stream folders, written as an operator would:
// the three files in a hidden folder first, then renamed into place, so the relay never reads one
// half-written. Each stream's certificate names one server name; agents and clients dial
// 127.0.0.1 and send that name (--server-name), as they would a stream's own DNS name.
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type StaticStream, writeStaticStream } from "../../cli/static-stream.ts";
import { type StreamConfig, streamConfigFile } from "../../relay/contract.ts";
import type { KeyPairPem } from "../../runtime/pki.ts";
import { type Relay, startRelayProcess } from "./dataplane.ts";

export interface PoolStream extends StaticStream {
  /** The folder's name under the streams dir. */
  folder: string;
  serverName: string;
  config: StreamConfig;
}

/** Writes a stream's credentials under `work/<folder>` and its relay folder into `streamsDir`. */
export async function writePoolStream(
  streamsDir: string,
  work: string,
  folder: string,
  o: { service: string; ca: KeyPairPem },
): Promise<PoolStream> {
  const serverName = `${folder}.pool.test`;
  const stream = await writeStaticStream(join(work, folder), {
    stream: `pool/${folder}`,
    service: o.service,
    dnsNames: [serverName],
    ipAddresses: [],
    ca: o.ca,
  });
  const config: StreamConfig = { ...JSON.parse(readFileSync(stream.relayConfig, "utf8")), serverNames: [serverName] };
  const staging = join(streamsDir, `.staging-${folder}`);
  mkdirSync(staging, { recursive: true });
  copyFileSync(stream.relayCert, join(staging, "tls.crt"));
  copyFileSync(stream.relayKey, join(staging, "tls.key"));
  writeFileSync(join(staging, "relay.json"), streamConfigFile(config));
  renameSync(staging, join(streamsDir, folder));
  return { ...stream, folder, serverName, config };
}

export type PoolRelay = Relay;

export function startPoolRelay(streamsDir: string, args: string[] = []): Promise<PoolRelay> {
  return startRelayProcess(["--streams-dir", streamsDir, ...args]);
}
