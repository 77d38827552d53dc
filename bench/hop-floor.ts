// The floor of our design: CPU per GB and throughput of ONE HTTP/2-over-TLS 1.3 hop between two
// Node.js processes on 127.0.0.1, with bare node:http2 and with grpc-js (windows and TLS as the
// product sets them). The tunnel has two such hops and three processes; see docs/benchmarks.md.
//
//   node bench/hop-floor.ts [--message 64k] [--total 1g] [--runs 3] [--modes h2,grpc]
//                           [--window 256k] [--json]
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { flowControlWindowBytes } from "../runtime/grpc-options.ts";
import { createCertificateAuthority, issueCertificate } from "../runtime/pki.ts";
import { type FromPeer, type Mode, type PeerConfig, peer, type ToPeer } from "./hop-floor/peer.ts";
import { killOnExit, loadAverage } from "./procs.ts";

type Direction = "client→server" | "server→client";

interface Result {
  mode: Mode;
  direction: Direction;
  gbitPerS: number;
  senderCpuSPerGB: number;
  receiverCpuSPerGB: number;
  /** Both processes together: what the hop costs the machine. */
  bothCpuSPerGB: number;
}

function bytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)i?b?$/i.exec(s.trim());
  if (!m) throw new Error(`not a size: ${s} (e.g. 64k, 1g)`);
  return Math.round(Number(m[1]) * 1024 ** " kmg".indexOf(m[2]!.toLowerCase() || " "));
}

/** Resolves with the first message from `child` that has `key`. */
function reply<K extends string>(child: ChildProcess, key: K): Promise<Extract<FromPeer, Record<K, unknown>>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromPeer) => {
      if (!(key in m)) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(m as Extract<FromPeer, Record<K, unknown>>);
    };
    const onExit = (code: number | null) => reject(new Error(`peer exited (${code}) waiting for "${key}"`));
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

async function runCase(mode: Mode, direction: Direction, base: Omit<PeerConfig, "mode" | "role" | "sends">) {
  const start = (config: PeerConfig) => {
    const child = killOnExit(fork(import.meta.filename, ["--peer"], { stdio: "inherit" }));
    child.send({ cmd: "config", config } satisfies ToPeer);
    return child;
  };
  const serverSends = direction === "server→client";
  const server = start({ ...base, mode, role: "server", sends: serverSends });
  const { port } = await reply(server, "port");
  const cipher = reply(server, "cipher");
  const client = start({ ...base, mode, role: "client", sends: !serverSends, port });
  await reply(client, "ready");
  const [sender, receiver] = serverSends ? [server, client] : [client, server];
  try {
    // Mark both CPU clocks with the stream established and idle, then start the transfer.
    const marked = [reply(server, "marked"), reply(client, "marked")];
    for (const p of [server, client]) p.send({ cmd: "mark" } satisfies ToPeer);
    await Promise.all(marked);
    const done = reply(receiver, "received");
    const t0 = performance.now();
    sender.send({ cmd: "go" } satisfies ToPeer);
    const { cpu: receiverCpu } = await done;
    const seconds = (performance.now() - t0) / 1000;
    const senderCpu = reply(sender, "cpu");
    sender.send({ cmd: "cpu" } satisfies ToPeer);
    const gb = base.totalBytes / 1e9;
    const senderCpuSPerGB = (await senderCpu).cpu / gb;
    const receiverCpuSPerGB = receiverCpu / gb;
    const result: Result = {
      mode,
      direction,
      gbitPerS: (base.totalBytes * 8) / seconds / 1e9,
      senderCpuSPerGB,
      receiverCpuSPerGB,
      bothCpuSPerGB: senderCpuSPerGB + receiverCpuSPerGB,
    };
    return { result, cipher: (await cipher).cipher };
  } finally {
    const exited = [client, server].filter((p) => p.exitCode === null).map((p) => once(p, "exit"));
    for (const p of [client, server]) p.kill("SIGKILL");
    await Promise.all(exited);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      message: { type: "string", default: "64k" },
      total: { type: "string", default: "1g" },
      runs: { type: "string", default: "3" },
      modes: { type: "string", default: "h2,grpc" },
      // Per-stream window; the default is the product's, so a larger one shows what it costs.
      window: { type: "string", default: `${flowControlWindowBytes}` },
      json: { type: "boolean", default: false },
    },
  });
  const messageBytes = bytes(values.message);
  const totalBytes = Math.ceil(bytes(values.total) / messageBytes) * messageBytes;
  const windowBytes = bytes(values.window);
  const runs = Number(values.runs);
  const modes = values.modes.split(",") as Mode[];
  const directions: Direction[] = ["client→server", "server→client"];

  const ca = await createCertificateAuthority("hop-floor CA");
  const leaf = await issueCertificate(ca, { commonName: "hop-floor", ipAddresses: ["127.0.0.1"], usage: "server" });
  const base = { messageBytes, totalBytes, windowBytes, caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem };

  // Interleaved (run-major) so drift in machine load spreads over all cases alike.
  const all: Result[] = [];
  const ciphers = new Set<string>();
  for (let r = 0; r < runs; r++) {
    for (const mode of modes) {
      for (const direction of directions) {
        const { result, cipher } = await runCase(mode, direction, base);
        ciphers.add(`${mode}: ${cipher}`);
        all.push(result);
        if (!values.json) process.stderr.write(`run ${r + 1}/${runs} ${mode} ${direction}: ${fmt(result)}\n`);
      }
    }
  }
  const medians = modes.flatMap((mode) =>
    directions.map((direction) => {
      const rs = all.filter((x) => x.mode === mode && x.direction === direction);
      return {
        mode,
        direction,
        gbitPerS: median(rs.map((x) => x.gbitPerS)),
        senderCpuSPerGB: median(rs.map((x) => x.senderCpuSPerGB)),
        receiverCpuSPerGB: median(rs.map((x) => x.receiverCpuSPerGB)),
        bothCpuSPerGB: median(rs.map((x) => x.bothCpuSPerGB)),
      };
    }),
  );
  const meta = {
    messageBytes,
    totalBytes,
    windowBytes,
    runs,
    node: process.version,
    ciphers: [...ciphers],
    load: loadAverage(),
  };
  if (values.json) {
    console.log(JSON.stringify({ ...meta, medians, results: all }, null, 2));
    return;
  }
  console.log(
    `One HTTP/2 + TLS hop on 127.0.0.1, medians of ${runs} runs; ${messageBytes} B writes, ${totalBytes} B, ${windowBytes} B stream window`,
  );
  console.log(`Node ${process.version}; ${[...ciphers].join("; ")}; load ${meta.load}\n`);
  console.log("| mode | direction | Gbit/s | sender CPU-s/GB | receiver CPU-s/GB | both ends CPU-s/GB |");
  console.log("| ---- | --------- | -----: | --------------: | ----------------: | -----------------: |");
  for (const m of medians) {
    const cells = [m.gbitPerS, m.senderCpuSPerGB, m.receiverCpuSPerGB, m.bothCpuSPerGB].map((v) => v.toFixed(2));
    console.log(`| ${m.mode} | ${m.direction} | ${cells.join(" | ")} |`);
  }
}

function fmt(r: Result): string {
  return `${r.gbitPerS.toFixed(2)} Gbit/s, sender ${r.senderCpuSPerGB.toFixed(2)}, receiver ${r.receiverCpuSPerGB.toFixed(2)} CPU-s/GB`;
}

if (process.argv.includes("--peer")) peer();
else await main();
