// FTP and RDP through one stream of several services, as real programs use them: Debian's vsftpd
// behind the agent in passive mode (its control port and passive range one allow-list service),
// lftp through the client's SOCKS5 listener putting and getting 100 MiB files checked by SHA-256,
// and Debian's xrdp completing the RDP handshake (X.224 negotiation, then TLS with its own
// certificate) through the same listener and through an -L port.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeStaticStream } from "../../cli/static-stream.ts";
import { runCommand } from "../helpers/command.ts";
import {
  type Agent,
  type Forwarder,
  type Relay,
  startAgent,
  startForwarder,
  startRelay,
} from "../helpers/dataplane.ts";
import { socks5Connect } from "../helpers/socks-client.ts";
import { startVsftpd, type Vsftpd } from "../helpers/vsftpd.ts";
import { rdpHandshake, startXrdp, type Xrdp } from "../helpers/xrdp.ts";

const mib = 1024 * 1024;

async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** A file of random bytes, written in pieces (no 100 MiB Buffer), and its SHA-256. */
async function randomFile(path: string, bytes: number): Promise<string> {
  const h = createHash("sha256");
  const out = createWriteStream(path);
  for (let left = bytes; left > 0; left -= mib) {
    const piece = randomBytes(Math.min(mib, left));
    h.update(piece);
    if (!out.write(piece)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  return h.digest("hex");
}

describe("end to end: FTP (vsftpd, passive) and RDP (xrdp) through one stream's SOCKS5 listener", function () {
  this.timeout(240_000);
  let dir: string;
  let vsftpd: Vsftpd;
  let xrdp: Xrdp;
  let relay: Relay;
  let agent: Agent;
  let fwd: Forwarder;
  let proxychainsConf: string;
  let transcript = "";

  before(async function () {
    this.timeout(60_000);
    dir = mkdtempSync(join(tmpdir(), "ds-ftp-rdp-"));
    [vsftpd, xrdp] = await Promise.all([startVsftpd(), startXrdp()]);
    const stream = await writeStaticStream(join(dir, "stream"), { service: "ftp", services: ["ftp", "rdp"] });
    relay = await startRelay(stream);
    const { first, last } = vsftpd.passive;
    agent = await startAgent(stream, relay.address, [
      // One service: the control port and the passive range, so that data connections, which an
      // FTP client opens to the control connection's host, reach the same service by name.
      `ftp=127.0.0.1:${vsftpd.port},${first}-${last}`,
      `rdp=127.0.0.1:${xrdp.port}`,
    ]);
    fwd = await startForwarder(stream, relay.address, ["-L", "127.0.0.1:0:rdp", "--socks5", "127.0.0.1:0"], 2);
    // lftp speaks no SOCKS itself: proxychains4 hands its connections to the listener, host names
    // unresolved (proxy_dns), as a user would run it.
    proxychainsConf = join(dir, "proxychains.conf");
    writeFileSync(
      proxychainsConf,
      [
        "strict_chain",
        "proxy_dns",
        "remote_dns_subnet 224",
        "tcp_read_time_out 30000",
        "tcp_connect_time_out 15000",
        "[ProxyList]",
        `socks5 127.0.0.1 ${fwd.ports[1]}`,
        "",
      ].join("\n"),
    );
  });
  after(async () => {
    await Promise.all([fwd?.process.stop(), agent?.process.stop(), relay?.process.stop()]);
    await Promise.all([vsftpd?.stop(), xrdp?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    transcript = "";
  });
  afterEach(function () {
    if (this.currentTest?.state !== "failed") return;
    for (const p of [relay, agent, fwd])
      console.error(`----- ${p.process.name} -----\n${p.process.logs.slice(-8_000)}`);
    console.error(
      `----- vsftpd -----\n${vsftpd.logs()}\n----- xrdp -----\n${xrdp.logs()}\n----- commands -----\n${transcript}`,
    );
  });

  const lftp = async (commands: string[]) => {
    const script = [
      "set cmd:fail-exit yes",
      "set net:max-retries 1",
      "set net:timeout 30",
      // The passive reply's address is the device's 127.0.0.1: connect to the control host instead.
      "set ftp:ignore-pasv-address yes",
      "set xfer:clobber yes",
      `open ftp://ftp:${vsftpd.port}`,
      ...commands,
      "bye",
    ].join("; ");
    const r = await runCommand("proxychains4", ["-q", "-f", proxychainsConf, "lftp", "-c", script], {
      timeoutMs: 180_000,
    });
    transcript += `$ lftp -c '${script}'\n${r.stdout}${r.stderr}\n`;
    return r;
  };

  it("lftp through the SOCKS5 listener lists, puts and gets 100 MiB files, checked by SHA-256", async () => {
    const up = join(dir, "up.bin");
    const down = join(dir, "down.bin");
    const want = await randomFile(up, 100 * mib);
    const started = Date.now();
    const put = await lftp(["cd up", `put ${up} -o big.bin`, "ls"]);
    assert.equal(put.code, 0, put.stderr);
    const putMs = Date.now() - started;
    assert.match(put.stdout, /\s104857600 .* big\.bin\n/, "the listing shows the file at its full size");
    assert.equal(await fileSha256(join(vsftpd.uploadDir, "big.bin")), want, "the device holds what was sent");
    const got = await lftp(["cd up", `get big.bin -o ${down}`, "ls"]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await fileSha256(down), want, "what came back is what was sent");
    console.log(
      `      100 MiB put in ${putMs} ms, got in ${Date.now() - started - putMs} ms (lftp, passive, via SOCKS5)`,
    );
    // Each transfer and listing had its own data connection, to a port of the passive range.
    assert.ok((vsftpd.logs().match(/227 Entering Passive Mode/g) ?? []).length >= 4, vsftpd.logs());
    assert.doesNotMatch(fwd.process.logs, /local request refused/);
  });

  it("curl lists the same folder through the listener (EPSV: data to the control connection's host)", async () => {
    const r = await runCommand(
      "curl",
      ["-sS", "--max-time", "30", "--socks5-hostname", `127.0.0.1:${fwd.ports[1]}`, `ftp://ftp:${vsftpd.port}/up/`],
      { timeoutMs: 60_000 },
    );
    transcript += `$ curl ftp://ftp:${vsftpd.port}/up/\n${r.stdout}${r.stderr}\n`;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /big\.bin/);
  });

  it("a port outside the service's ports is refused by the agent (DS_PORT_OUT_OF_RANGE), the client told 0x02", async () => {
    const outside = vsftpd.passive.last + 1;
    const r = await socks5Connect(fwd.ports[1]!, "ftp", outside);
    r.socket.destroy();
    assert.equal(r.reply, 0x02, "connection not allowed by ruleset");
    await fwd.process.waitFor(
      new RegExp(`local request refused .*request=ftp:${outside} .*reason=DS_PORT_OUT_OF_RANGE`),
    );
    await agent.process.waitFor(/dial refused .*reason=DS_PORT_OUT_OF_RANGE .*not \d+/);
  });

  it("RDP: xrdp's X.224 Connection Confirm and TLS upgrade complete through the SOCKS5 listener and an -L port", async () => {
    const viaSocks = await socks5Connect(fwd.ports[1]!, "rdp", 3389);
    assert.equal(viaSocks.reply, 0);
    const a = await rdpHandshake(viaSocks.socket);
    viaSocks.socket.destroy();
    const plain = connect(fwd.ports[0]!, "127.0.0.1");
    await once(plain, "connect");
    const b = await rdpHandshake(plain);
    plain.destroy();
    for (const h of [a, b]) {
      assert.equal(h.confirm.length, 19);
      assert.equal(h.selectedProtocol, 1, "the server chose TLS (PROTOCOL_SSL)");
      assert.match(h.tlsVersion, /^TLSv1\.[23]$/);
      assert.equal(h.fingerprint256, xrdp.fingerprint256, "the TLS is xrdp's own, end to end");
    }
  });
});
