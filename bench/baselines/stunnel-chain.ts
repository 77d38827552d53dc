// A TLS relay chain in C with our path's shape: three stunnel processes from Debian (the user
// side plain → TLS, the relay TLS → TLS, the device side TLS → plain target), TLS 1.3,
// TCP_NODELAY. The near-limit reference for two TLS hops and three processes on this machine.
// stunnel's service is either client or server, so the relay process runs one of each, joined
// by a loopback hop inside it.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createCertificateAuthority, issueCertificate } from "../../runtime/pki.ts";
import { freePort } from "../../test/helpers/free-port.ts";
import { accepts } from "../net.ts";
import { killOnExit, rssKiB } from "../procs.ts";
import type { BenchPath } from "./path.ts";

export async function stunnelChain(targetPort: number, timeoutMs = 15_000): Promise<BenchPath> {
  const dir = mkdtempSync(join(tmpdir(), "ds-stunnel-"));
  const ca = await createCertificateAuthority("bench stunnel CA");
  const leaf = await issueCertificate(ca, { commonName: "localhost", dnsNames: ["localhost"], usage: "server" });
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };
  const caFile = file("ca.crt", ca.certPem);
  const certFile = file("tls.crt", leaf.certPem);
  const keyFile = file("tls.key", leaf.keyPem);
  const [user, relayIn, relayOut, device] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const common = ["sslVersionMin = TLSv1.3", "socket = l:TCP_NODELAY=1", "socket = r:TCP_NODELAY=1"];
  const client = (accept: number, connect: number) => [
    "client = yes",
    `accept = 127.0.0.1:${accept}`,
    `connect = 127.0.0.1:${connect}`,
    `CAfile = ${caFile}`,
    "verifyChain = yes",
    "checkHost = localhost",
    ...common,
  ];
  const server = (accept: number, connect: number) => [
    `accept = 127.0.0.1:${accept}`,
    `connect = 127.0.0.1:${connect}`,
    `cert = ${certFile}`,
    `key = ${keyFile}`,
    ...common,
  ];
  const configs = {
    user: ["[user]", ...client(user, relayIn)],
    relay: ["[relay-in]", ...server(relayIn, relayOut), "[relay-out]", ...client(relayOut, device)],
    device: ["[device]", ...server(device, targetPort)],
  };
  const procs = Object.entries(configs).map(([name, lines]) =>
    killOnExit(
      spawn("stunnel", [file(`${name}.conf`, ["foreground = yes", "pid =", "debug = 4", ...lines, ""].join("\n"))], {
        stdio: ["ignore", "ignore", "ignore"],
      }),
    ),
  );
  const stop = async () => {
    for (const p of procs) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (const port of [device, relayOut, relayIn, user]) {
    while (!(await accepts(port))) {
      if (Date.now() > deadline || procs.some((p) => p.exitCode !== null)) {
        await stop();
        throw new Error(`stunnel did not listen on 127.0.0.1:${port} (is Debian's stunnel4 installed?)`);
      }
      await sleep(30);
    }
  }
  return {
    name: "stunnel",
    port: user,
    pids: () => procs.map((p) => p.pid!),
    rss: () => Object.fromEntries(Object.keys(configs).map((name, i) => [name, rssKiB(procs[i]!.pid!)])),
    detail: "3 stunnel processes: plain → TLS 1.3 → TLS 1.3 → plain, TCP_NODELAY",
    stop,
  };
}
