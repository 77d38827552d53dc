// `npm start` (devicestreams demo) as a user runs it: "ready" means its local port listens, and
// a SIGTERM (`timeout`, a supervisor, `kill <pid>`) stops the relay, agent and client it started.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { nodeFlags } from "../../cli/node-flags.ts";
import { echoServer, type TcpTarget } from "../helpers/tcp-targets.ts";
import { waitFor } from "../helpers/wait.ts";

const cli = fileURLToPath(new URL("../../cli/devicestreams.ts", import.meta.url));

/** The pids of a process's children, from ps. */
function childPids(pid: number): number[] {
  try {
    return execFileSync("ps", ["--ppid", String(pid), "-o", "pid="], { encoding: "utf8" })
      .split("\n")
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there is none
  }
}

/** Gone, or a zombie nobody reaped yet (this container's init may not reap orphans). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
  } catch {
    return true;
  }
}

describe("devicestreams demo", function () {
  this.timeout(90_000);
  let echo: TcpTarget;
  let demo: ChildProcess | undefined;
  let children: number[] = [];
  let output = "";
  before(async () => {
    echo = await echoServer();
  });
  after(async () => {
    for (const pid of children) if (!gone(pid)) process.kill(pid, "SIGKILL");
    if (demo?.exitCode === null) demo.kill("SIGKILL");
    await echo?.close();
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") console.error(output.slice(-10_000));
  });

  it("says ready once its local port accepts, and a SIGTERM stops every process it started", async () => {
    demo = spawn(process.execPath, [...nodeFlags, cli, "demo", "--local", "0", "--target", echo.address], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    demo.stdout!.on("data", (c: Buffer) => {
      output += c.toString();
    });
    demo.stderr!.on("data", (c: Buffer) => {
      output += c.toString();
    });
    const exited = new Promise<number | null>((r) => demo!.once("exit", (code) => r(code)));
    const ready = await waitFor("the demo to say ready", () => /^ready: 127\.0\.0\.1:(\d+) /m.exec(output), 80_000);
    const port = Number(ready[1]);
    // At this very moment, not a moment later: a user's ssh or nc runs as soon as "ready" shows.
    const socket: Socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    try {
      await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      children = childPids(demo.pid!);
      assert.equal(children.length, 3, `relay, agent and connect run under the demo: ${children}`);
      // The connection stays open through the signal: the relay would drain it for 30 s.
      demo.kill("SIGTERM");
      await waitFor("every child of the demo to end", () => children.every(gone), 5_000);
      assert.equal(await exited, 0, "the demo stops cleanly");
    } finally {
      socket.destroy();
    }
  });
});
