// `node bench/pool-idle.ts`: the relay's cost of an idle stream in pool mode (issue 18's target:
// 10,000 idle streams in <= 2 GiB, i.e. <= 200 KiB each, and <= 0.2 core at rest). One pool relay
// process (--streams-dir) serves N streams, each with ONE attached idle agent session; the agents
// run in a few loader processes (bench/pool-idle/agents.ts), many sessions each, started a few at a time, with the real
// agent attach code. Measured: the relay's RSS before any stream, with the streams loaded, and with
// every agent attached; then the relay's CPU (utime + stime from /proc) over a rest window.
//   --streams N   streams (default 10000)      --smoke   100 streams, a 5 s rest window
//   --loaders K   agent processes (default 4)  --rest S  rest window in seconds (default 30)
//   --out F       JSON results (default bench/pool-idle.json, not committed)
// Every stream's folder holds the same wildcard certificate (issuing 10,000 takes minutes and
// changes nothing the relay holds: it reads each folder's files into buffers of its own).
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { streamConfigFile } from "../relay/contract.ts";
import { createCertificateAuthority, issueCertificate } from "../runtime/pki.ts";
import type { ComponentProcess } from "../test/helpers/component-process.ts";
import { startRelayProcess } from "../test/helpers/dataplane.ts";
import { metric } from "../test/helpers/robustness.ts";
import { newToken, tokenSha256 } from "../transport/credentials.ts";
import type { LoaderJob } from "./pool-idle/agents.ts";
import { cpuSeconds, killOnExit, raiseFdLimit, rssKiB } from "./procs.ts";

const { values: a } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    streams: { type: "string" },
    loaders: { type: "string" },
    rest: { type: "string" },
    out: { type: "string", default: fileURLToPath(new URL("./pool-idle.json", import.meta.url)) },
  },
});
const wanted = Number(a.streams ?? (a.smoke ? 100 : 10_000));
const loaders = Number(a.loaders ?? 4);
const restSeconds = Number(a.rest ?? (a.smoke ? 5 : 30));
const log = (m: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Each stream holds a socket in the relay and one in a loader; leave room for everything else.
const fdLimit = raiseFdLimit();
const streams = Math.min(wanted, Number.isFinite(fdLimit) ? Math.max(0, fdLimit - 2000) : wanted);
const why = streams < wanted ? `the fd limit (${fdLimit}) allows ${streams} streams, not ${wanted}` : "";
if (why) log(why);

const dir = mkdtempSync(join(tmpdir(), "ds-pool-idle-"));
const streamsDir = join(dir, "streams");
const staging = join(dir, "staging");
mkdirSync(streamsDir);
mkdirSync(staging);
const children: ChildProcess[] = [];
let relay: ComponentProcess | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void cleanUp().then(() => process.exit(130)));
}
const cleanUp = async () => {
  for (const c of children) c.kill("SIGKILL");
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
};

async function until(what: string, done: () => Promise<boolean>, timeoutMs: number, progress?: () => Promise<string>) {
  const deadline = Date.now() + timeoutMs;
  let next = Date.now() + 10_000;
  // The relay may be too busy to answer within the metric's timeout: that is a "not yet".
  while (!(await done().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    if (progress && Date.now() > next) {
      log(`${what}: ${await progress().catch((e: Error) => e.message)}`);
      next = Date.now() + 10_000;
    }
    await sleep(500);
  }
}

try {
  const ca = await createCertificateAuthority("devicestreams pool bench CA");
  const pair = await issueCertificate(ca, { commonName: "pool", dnsNames: ["*.pool.bench"], usage: "server" });
  const tokens: Array<{ serverName: string; token: string }> = [];
  for (let i = 0; i < streams; i++) {
    const id = `s${String(i).padStart(5, "0")}`;
    const serverName = `${id}.pool.bench`;
    const token = newToken("destination");
    tokens.push({ serverName, token });
    const folder = join(staging, id);
    mkdirSync(folder);
    writeFileSync(join(folder, "tls.crt"), pair.certPem);
    writeFileSync(join(folder, "tls.key"), pair.keyPem);
    const config = {
      version: 1 as const,
      stream: `bench/${id}`,
      service: "echo",
      credentials: [
        { role: "source" as const, sha256: tokenSha256(newToken("source")) },
        { role: "destination" as const, sha256: tokenSha256(token) },
      ],
      serverNames: [serverName],
    };
    writeFileSync(join(folder, "relay.json"), streamConfigFile(config));
  }
  log(`wrote ${streams} stream folders`);

  const started = await startRelayProcess(
    [
      "--streams-dir",
      streamsDir,
      // Every agent here comes from 127.0.0.1; real devices come from many addresses.
      "--max-grpc-connections-per-source",
      String(2 * streams + 100),
    ],
    { DEVICESTREAMS_LOG_LEVEL: "info" },
    30_000,
  );
  relay = started.process;
  const grpcPort = Number(started.address.split(":")[1]);
  const metricsPort = started.metricsPort;
  const streamCount = async () => (await metric(metricsPort, "devicestreams_relay_streams")) ?? 0;
  const attachedCount = async () => (await metric(metricsPort, "devicestreams_relay_device_attached")) ?? 0;
  await sleep(3000);
  const rssBefore = rssKiB(relay.pid);
  log(`relay ready on ${grpcPort}; RSS ${Math.round(rssBefore / 1024)} MiB with no stream`);

  const loadStart = Date.now();
  for (const t of tokens) {
    const id = t.serverName.split(".")[0]!;
    renameSync(join(staging, id), join(streamsDir, id));
  }
  await until(
    "the relay to load every stream",
    async () => (await streamCount()) >= streams,
    600_000,
    async () => String(await streamCount()),
  );
  const loadSeconds = (Date.now() - loadStart) / 1000;
  await sleep(3000);
  const rssLoaded = rssKiB(relay.pid);
  log(`${streams} streams loaded in ${loadSeconds.toFixed(1)} s; RSS ${Math.round(rssLoaded / 1024)} MiB`);

  const attachStart = Date.now();
  const loaderReasons: Array<Record<string, number>> = [];
  const topReasons = () => {
    const all: Record<string, number> = {};
    for (const r of loaderReasons) for (const [k, n] of Object.entries(r ?? {})) all[k] = (all[k] ?? 0) + n;
    return Object.entries(all)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 3)
      .map(([k, n]) => `${n}× ${k}`)
      .join("; ");
  };
  const per = Math.ceil(streams / loaders);
  const loaderScript = fileURLToPath(new URL("./pool-idle/agents.ts", import.meta.url));
  for (let k = 0; k < loaders && k * per < streams; k++) {
    const job: LoaderJob = {
      relay: `127.0.0.1:${grpcPort}`,
      caPem: ca.certPem,
      streams: tokens.slice(k * per, (k + 1) * per),
      maxConnecting: 16,
    };
    const child = killOnExit(fork(loaderScript, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    child.on("message", (m: { reasons: Record<string, number> }) => {
      loaderReasons[k] = m.reasons;
    });
    child.send(job);
    children.push(child);
  }
  await until(
    "every agent to attach",
    async () => (await attachedCount()) >= streams,
    900_000,
    async () => `${await attachedCount()} of ${streams} ${topReasons()}`,
  );
  const attachSeconds = (Date.now() - attachStart) / 1000;
  log(`${streams} agents attached in ${attachSeconds.toFixed(1)} s; settling`);
  await sleep(10_000);
  const rssAttached = rssKiB(relay.pid);
  const cpu0 = cpuSeconds([relay.pid]);
  const t0 = Date.now();
  await sleep(restSeconds * 1000);
  const cores = (cpuSeconds([relay.pid]) - cpu0) / ((Date.now() - t0) / 1000);
  const stillAttached = await attachedCount();
  const loaderRss = children.map((c) => rssKiB(c.pid!));

  const result = {
    streams,
    ...(why ? { reduced: why } : {}),
    idle_stream_rss_kib_10k: round((rssAttached - rssBefore) / streams),
    idle_stream_relay_cpu_cores_10k: round(cores, 3),
    targets: { idle_stream_rss_kib: 200, relay_cpu_cores: 0.2 },
    relay_rss_mib: { no_streams: mib(rssBefore), streams_loaded: mib(rssLoaded), agents_attached: mib(rssAttached) },
    per_stream_kib: {
      loaded: round((rssLoaded - rssBefore) / streams),
      attached_session: round((rssAttached - rssLoaded) / streams),
    },
    load_seconds: round(loadSeconds),
    attach_seconds: round(attachSeconds),
    rest_seconds: restSeconds,
    still_attached_after_rest: stillAttached,
    loaders: { processes: children.length, rss_mib: loaderRss.map(mib) },
    environment: { node: process.version, fd_limit: fdLimit, load_average: loadavg().map((l) => round(l)) },
  };
  console.log(JSON.stringify(result, null, 2));
  writeFileSync(a.out!, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${a.out}`);
} catch (err) {
  // What the relay said, for the failure's report.
  const logs = relay?.logs.split("\n").filter((l) => / (WARN|ERROR) /.test(l)) ?? [];
  console.error(logs.slice(-40).join("\n"));
  throw err;
} finally {
  await cleanUp();
}

function round(n: number, digits = 1): number {
  return Number(n.toFixed(digits));
}

function mib(kib: number): number {
  return round(kib / 1024);
}
