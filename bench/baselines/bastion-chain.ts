// The OpenSSH bastion chain, what a team does today to reach a device behind NAT from a laptop
// with both legs encrypted: the device runs `ssh -R` into a bastion sshd, the user `ssh -L`
// through the same sshd. The like-for-like baseline of our client → relay → agent path: two
// encrypted legs, one middle process tree (sshd) that decrypts and encrypts again.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../test/helpers/free-port.ts";
import { startSshd } from "../../test/helpers/sshd.ts";
import { accepts } from "../net.ts";
import { rssKiB, tree } from "../procs.ts";
import type { BenchPath } from "./path.ts";
import { startReverseSsh, startSsh, waitForward } from "./ssh-reverse.ts";

export async function bastionChain(targetPort: number, timeoutMs = 20_000): Promise<BenchPath> {
  const sshd = await startSshd();
  const [devicePort, userPort] = [await freePort(), await freePort()];
  const device = startReverseSsh(sshd, devicePort, targetPort);
  const user = startSsh(sshd, ["-L", `127.0.0.1:${userPort}:127.0.0.1:${devicePort}`]);
  try {
    await waitForward(device, sshd, () => accepts(devicePort), timeoutMs, 50);
    await waitForward(user, sshd, () => accepts(userPort), timeoutMs, 50);
  } catch (e) {
    device.ssh.kill("SIGKILL");
    user.ssh.kill("SIGKILL");
    await sshd.stop();
    throw e;
  }
  const negotiated = /kex: server->client cipher: (\S+)/.exec(user.log())?.[1] ?? "unknown";
  const sshdPid = Number(readFileSync(join(sshd.dir, "sshd.pid"), "utf8").trim());
  return {
    name: "bastion",
    port: userPort,
    pids: () => [device.ssh.pid!, user.ssh.pid!, sshdPid],
    rss: () => ({
      "ssh -L": rssKiB(user.ssh.pid!),
      sshd: tree([sshdPid]).reduce((a, p) => a + rssKiB(p), 0),
      "ssh -R": rssKiB(device.ssh.pid!),
    }),
    detail: `ssh -L → sshd → ssh -R, cipher ${negotiated}`,
    stop: async () => {
      device.ssh.kill("SIGKILL");
      user.ssh.kill("SIGKILL");
      await sshd.stop();
    },
  };
}
