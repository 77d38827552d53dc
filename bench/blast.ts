// The background load of the head-of-line check, as its own process so that the driver's event
// loop measures only the ping-pongs: uploads the pattern on one connection ('C' sink) until killed.
// Run: node bench/blast.ts PORT → prints "blasting" once connected.
import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { block } from "./pattern.ts";
import { killOnExit } from "./procs.ts";

function blast(port: number): void {
  const s = connect({ port, host: "127.0.0.1", noDelay: true }, () => {
    s.write("C");
    process.stdout.write("blasting\n");
    const pump = () => {
      // Runs until the process is killed; each pass stops at backpressure.
      while (s.write(block.subarray(0, 256 * 1024))) {}
      s.once("drain", pump);
    };
    pump();
  });
  s.on("error", () => process.exit(1));
}

/** Starts a blaster against `port`; resolves once it is sending. Kill it to stop the load. */
export async function startBlast(port: number, timeoutMs = 15_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), String(port)], {
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

if (process.argv[1] === fileURLToPath(import.meta.url)) blast(Number(process.argv[2]));
