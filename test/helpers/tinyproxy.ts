// A real HTTP proxy (Debian's tinyproxy) that allows CONNECT only with Basic credentials, as a
// factory's outbound proxy would; its log shows every CONNECT it made.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ManagedProcess, startProcess } from "./child-process.ts";
import { freePort } from "./free-port.ts";
import { waitFor } from "./wait.ts";

export interface Tinyproxy {
  port: number;
  user: string;
  password: string;
  /** The CONNECT targets it logged, in order. */
  connects(): string[];
  logs(): string;
  stop(): Promise<void>;
}

/** `connectPorts`: the only ports CONNECT may reach (a factory proxy that lets devices out to one). */
export async function startTinyproxy(o: { connectPorts?: number[] } = {}): Promise<Tinyproxy> {
  const dir = mkdtempSync(join(tmpdir(), "ds-tinyproxy-"));
  const port = await freePort();
  const [user, password] = ["factory", `pw-${process.pid}`];
  const logFile = join(dir, "tinyproxy.log");
  writeFileSync(
    join(dir, "tinyproxy.conf"),
    [
      `Port ${port}`,
      "Listen 127.0.0.1",
      "Allow 127.0.0.1",
      `BasicAuth ${user} ${password}`,
      ...(o.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
      "Timeout 600",
      "MaxClients 200",
      "LogLevel Connect",
      `LogFile "${logFile}"`,
      `PidFile "${join(dir, "tinyproxy.pid")}"`,
    ].join("\n"),
  );
  const proc: ManagedProcess = startProcess(
    "tinyproxy",
    "tinyproxy",
    ["-d", "-c", join(dir, "tinyproxy.conf")],
    join(dir, "stdout.log"),
  );
  const logs = () => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
  await waitFor("tinyproxy to listen", async () => !proc.running() || (await listening()), 10_000);
  if (!proc.running()) throw new Error(`tinyproxy exited: ${proc.tail()}\n${logs()}`);
  return {
    port,
    user,
    password,
    connects: () => [...logs().matchAll(/Request \(file descriptor \d+\): CONNECT (\S+)/g)].map((m) => m[1]!),
    logs,
    stop: async () => {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
