// The background load of the head-of-line check, as its own process so that the driver's event
// loop measures only the ping-pongs: uploads the pattern on one connection ('C' sink) until killed,
// as fast as the path takes it, or paced to a fixed rate.
// Run: node bench/blast.ts PORT [MBIT_PER_S] → prints "blasting" once connected.
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { block } from "./pattern.ts";
import { killOnExit } from "./procs.ts";

/** Paced: 16 KiB pieces every millisecond or so, as a steady copy would send, never ahead of the rate. */
function paced(s: Socket, mbitPerSecond: number): void {
  const bytesPerMs = (mbitPerSecond * 1e6) / 8 / 1000;
  const started = performance.now();
  let sent = 0;
  setInterval(() => {
    const due = (performance.now() - started) * bytesPerMs;
    while (sent + 16_384 <= due && s.writableLength < 1 << 20) {
      s.write(block.subarray(0, 16_384));
      sent += 16_384;
    }
  }, 1);
}

function blast(port: number, mbitPerSecond: number): void {
  const s = connect({ port, host: "127.0.0.1", noDelay: true }, () => {
    s.write("C");
    process.stdout.write("blasting\n");
    if (mbitPerSecond > 0) return paced(s, mbitPerSecond);
    const pump = () => {
      // Runs until the process is killed; each pass stops at backpressure.
      while (s.write(block.subarray(0, 256 * 1024))) {}
      s.once("drain", pump);
    };
    pump();
  });
  s.on("error", () => process.exit(1));
}

/**
 * Starts a blaster against `port` (as fast as it goes, or at `mbitPerSecond`); resolves once it is
 * sending. Kill it to stop the load.
 */
export async function startBlast(port: number, mbitPerSecond = 0, timeoutMs = 15_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), String(port), String(mbitPerSecond)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  killOnExit(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("blast did not start")), timeoutMs);
    child.stdout!.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => reject(new Error(`blast exited with ${code}`)));
  });
  return child;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) blast(Number(process.argv[2]), Number(process.argv[3] ?? 0));
