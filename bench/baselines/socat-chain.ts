// A chain of plain TCP relays with as many forwarding processes as our path (client, relay,
// agent): three socat processes, each `TCP-LISTEN → TCP` with fork. No encryption and no
// multiplexing: the cost of three extra copies through user space and nothing else.
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../../test/helpers/free-port.ts";
import { accepts } from "../net.ts";
import { killOnExit } from "../procs.ts";
import type { BenchPath } from "./path.ts";

export const socatLegs = 3;
// socat's default 8 KiB buffer would make this baseline slower than socat can be; 64 KiB is what
// one socket read delivers on loopback.
const bufferBytes = 65536;

export async function socatChain(targetPort: number, timeoutMs = 15_000): Promise<BenchPath> {
  const ports: number[] = [];
  for (let i = 0; i < socatLegs; i++) ports.push(await freePort());
  const procs = ports.map((listen, i) => {
    const next = i + 1 < ports.length ? ports[i + 1]! : targetPort;
    return killOnExit(
      spawn(
        "socat",
        [
          "-b",
          String(bufferBytes),
          // socat closes both directions 0.5 s after the first EOF by default; the target answers
          // an upload only after the sender's FIN has come through, which under load takes longer.
          "-t",
          "60",
          `TCP-LISTEN:${listen},bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay`,
          `TCP:127.0.0.1:${next},nodelay`,
        ],
        { stdio: ["ignore", "ignore", "inherit"] },
      ),
    );
  });
  const deadline = Date.now() + timeoutMs;
  // Bounded poll of each listener, the last leg first so that a probe (which cascades through
  // the chain and closes at once) never meets a leg that is not listening yet.
  for (const port of [...ports].reverse()) {
    while (!(await accepts(port))) {
      if (Date.now() > deadline) {
        for (const p of procs) p.kill("SIGKILL");
        throw new Error(`socat did not listen on 127.0.0.1:${port}`);
      }
      await sleep(30);
    }
  }
  return {
    name: "socat",
    port: ports[0]!,
    pids: () => procs.map((p) => p.pid!),
    rss: () => ({}),
    detail: `${socatLegs} socat processes in a chain, -b ${bufferBytes}`,
    stop: async () => {
      for (const p of procs) p.kill("SIGKILL");
    },
  };
}
