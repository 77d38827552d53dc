// A real xrdp (Debian's) for tests: in the foreground on a loopback port, with its own xrdp.ini
// and an RSA certificate of the test's making, so a test can check that the TLS it reaches
// through a tunnel is this server's. No session manager: the RDP handshake (X.224 negotiation,
// then TLS) is what the tests need, not a desktop.
import { webcrypto, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import "reflect-metadata"; // @peculiar/x509 resolves its parts through tsyringe, which needs it
import * as x509 from "@peculiar/x509";
import { forgetOnExit, removeOnExit, startProcess, tailFile } from "./child-process.ts";
import { freePort } from "./free-port.ts";
import { StopWaiting, waitFor } from "./wait.ts";

x509.cryptoProvider.set("default", webcrypto as never);

export const xrdpPath = "/usr/sbin/xrdp";

export interface Xrdp {
  port: number;
  /** SHA-256 of the DER of the certificate xrdp serves, as node:tls's fingerprint256 writes it. */
  fingerprint256: string;
  logs(): string;
  stop(): Promise<void>;
}

async function rsaCertificate(): Promise<{ certPem: string; keyPem: string }> {
  const alg = {
    name: "RSASSA-PKCS1-v1_5",
    hash: "SHA-256",
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
  };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=devicestreams-test-xrdp",
    keys,
    signingAlgorithm: alg,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
  });
  const key = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { certPem: cert.toString("pem"), keyPem: x509.PemConverter.encode(key, "PRIVATE KEY") };
}

export async function startXrdp(): Promise<Xrdp> {
  const dir = mkdtempSync(join(tmpdir(), "ds-xrdp-"));
  removeOnExit(dir);
  const { certPem, keyPem } = await rsaCertificate();
  writeFileSync(join(dir, "cert.pem"), certPem);
  writeFileSync(join(dir, "key.pem"), keyPem, { mode: 0o600 });
  const fingerprint256 = new X509Certificate(certPem).fingerprint256;
  const logPath = join(dir, "xrdp.log");
  const configPath = join(dir, "xrdp.ini");
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(
      configPath,
      [
        "[Globals]",
        "ini_version=1",
        "fork=true",
        `port=tcp://127.0.0.1:${port}`,
        "security_layer=negotiate",
        "crypt_level=high",
        `certificate=${join(dir, "cert.pem")}`,
        `key_file=${join(dir, "key.pem")}`,
        "ssl_protocols=TLSv1.2, TLSv1.3",
        "",
        "[Logging]",
        `LogFile=${logPath}`,
        "LogLevel=INFO",
        "EnableSyslog=false",
        "",
        "[Xorg]",
        "name=Xorg",
        "lib=libxup.so",
        "username=ask",
        "password=ask",
        "ip=127.0.0.1",
        "port=-1",
        "code=20",
        "",
      ].join("\n"),
    );
    const proc = startProcess("xrdp", xrdpPath, ["--nodaemon", "--config", configPath], join(dir, "stderr.log"));
    const listening = await waitFor(
      `xrdp to listen on port ${port}`,
      () => {
        if (!proc.running()) throw new StopWaiting("xrdp exited");
        return /listening to port \d+ on 127\.0\.0\.1/.test(tailFile(logPath, 50));
      },
      10_000,
      20,
    ).catch(() => false);
    if (!listening) {
      await proc.stop(1_000);
      const why = `${tailFile(join(dir, "stderr.log"), 20)}\n${tailFile(logPath, 20)}`;
      if (attempt < 3 && /in use|bind/i.test(why)) continue;
      rmSync(dir, { recursive: true, force: true });
      forgetOnExit(dir);
      throw new Error(`xrdp did not listen on 127.0.0.1:${port} (is it installed? .ci/run installs it):\n${why}`);
    }
    return {
      port,
      fingerprint256,
      logs: () => tailFile(logPath, 60),
      stop: async () => {
        await proc.stop(2_000);
        rmSync(dir, { recursive: true, force: true });
        forgetOnExit(dir);
      },
    };
  }
}

/** X.224 Connection Request (TPKT) with an RDP Negotiation Request for TLS (PROTOCOL_SSL). */
const connectionRequest = Buffer.from("030000130ee000000000000100080001000000", "hex");

export interface RdpHandshake {
  /** The X.224 Connection Confirm, as received (19 bytes: TPKT, CC TPDU, RDP_NEG_RSP). */
  confirm: Buffer;
  /** The protocol the server selected in its RDP_NEG_RSP (1: TLS). */
  selectedProtocol: number;
  tlsVersion: string;
  fingerprint256: string;
}

/**
 * The start of an RDP connection over `socket` (already connected to the server, perhaps
 * through a tunnel): X.224 negotiation, then the TLS upgrade, as mstsc and FreeRDP begin.
 */
export async function rdpHandshake(socket: Socket, timeoutMs = 15_000): Promise<RdpHandshake> {
  const timer = setTimeout(() => socket.destroy(new Error(`no RDP handshake within ${timeoutMs} ms`)), timeoutMs);
  try {
    const confirm = await new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (c: Buffer) => {
        got = Buffer.concat([got, c]);
        if (got.length < 4) return;
        const length = got.readUInt16BE(2);
        if (got.length < length) return;
        socket.off("data", onData);
        socket.pause();
        if (got.length > length) socket.unshift(got.subarray(length));
        resolve(got.subarray(0, length));
      };
      socket.on("data", onData);
      socket.once("error", reject);
      socket.once("close", () => reject(new Error("the connection closed before the X.224 Connection Confirm")));
      socket.write(connectionRequest);
      socket.resume(); // a socket handed over paused (after a SOCKS reply) must flow again
    });
    // TPKT v3, then the CC TPDU (0xD0), then RDP_NEG_RSP (type 2) with the selected protocol.
    if (confirm[0] !== 0x03 || (confirm[5]! & 0xf0) !== 0xd0 || confirm[11] !== 0x02) {
      throw new Error(`not an X.224 Connection Confirm with RDP_NEG_RSP: ${confirm.toString("hex")}`);
    }
    const selectedProtocol = confirm.readUInt32LE(15);
    const tls = await new Promise<ReturnType<typeof tlsConnect>>((resolve, reject) => {
      // The server's certificate is self-signed, as xrdp's usually is: the test compares fingerprints.
      const t = tlsConnect({ socket, rejectUnauthorized: false }, () => resolve(t));
      t.once("error", reject);
    });
    const out = {
      confirm,
      selectedProtocol,
      tlsVersion: tls.getProtocol() ?? "",
      fingerprint256: tls.getPeerCertificate().fingerprint256,
    };
    tls.end();
    return out;
  } finally {
    clearTimeout(timer);
  }
}
