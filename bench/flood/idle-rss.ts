// `node bench/flood/idle-rss.ts [CHECKOUT]`: a relay from CHECKOUT (default: this one) with 400
// HTTP/2 sessions that never call, from 20 loopback sources: its RSS before, 3 s and 12 s after,
// and how many sessions it still holds then. Run it against an older checkout to compare.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { nodeFlags } from "../../cli/node-flags.ts";
import { writeStaticStream } from "../../cli/static-stream.ts";
import { h2Session, loopback } from "../../test/helpers/raw-peers.ts";
import { rssKiB } from "../procs.ts";

const checkout = process.argv[2] ?? fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ds-idle-rss-"));
const stream = await writeStaticStream(dir, { service: "echo" });
const relay = spawn(
  process.execPath,
  [
    ...nodeFlags,
    join(checkout, "cli/devicestreams.ts"),
    "relay",
    "--listen=127.0.0.1:0",
    "--metrics-listen=127.0.0.1:0",
    `--config=${stream.relayConfig}`,
    `--tls-cert=${stream.relayCert}`,
    `--tls-key=${stream.relayKey}`,
  ],
  { stdio: ["ignore", "pipe", "pipe"] },
);
let out = "";
relay.stdout.on("data", (d) => (out += d));
relay.stderr.on("data", (d) => (out += d));
try {
  while (!/grpcPort=(\d+)/.test(out)) {
    if (relay.exitCode !== null) throw new Error(`the relay exited:\n${out}`);
    await sleep(100);
  }
  const port = Number(/grpcPort=(\d+)/.exec(out)![1]);
  await sleep(2000);
  const mib = () => Math.round(rssKiB(relay.pid!) / 1024);
  const before = mib();
  const sessions: Awaited<ReturnType<typeof h2Session>>[] = [];
  for (let i = 0; i < 400; i++) sessions.push(await h2Session(port, stream.ca.certPem, loopback(30, i % 20)));
  const held = () => sessions.filter((s) => !s.session.closed && !s.session.destroyed).length;
  await sleep(3000);
  const at3 = { rssMiB: mib(), held: held() };
  await sleep(9000);
  const at12 = { rssMiB: mib(), held: held() };
  console.log(JSON.stringify({ checkout, beforeMiB: before, after3s: at3, after12s: at12 }));
  for (const s of sessions) s.session.destroy();
} finally {
  relay.kill();
  rmSync(dir, { recursive: true, force: true });
}
