// A throwaway certificate authority for the test control plane. It is synchronous on purpose:
// TestCluster.impersonate() must hand back a client certificate (CN = user, O = groups: how
// kube-apiserver authenticates x509 clients) without awaiting, and WebCrypto-based signers
// (@peculiar/x509) are async. So it writes the few DER structures X.509 needs by hand and signs
// with node:crypto. ECDSA P-256 keeps key generation instant.
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

export interface CertRequest {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipv4Addresses?: string[];
  usage: "server" | "client";
}

// --- DER: tag, length, value ---
function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const value = Buffer.concat(parts);
  const n = value.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else len = Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, value]);
}
const seq = (...parts: Buffer[]) => tlv(0x30, ...parts);
const set = (...parts: Buffer[]) => tlv(0x31, ...parts);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, "utf8"));
const explicit = (n: number, inner: Buffer) => tlv(0xa0 + n, inner);
const TRUE = tlv(0x01, Buffer.from([0xff]));

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [40 * a + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function utcTime(d: Date): Buffer {
  const s = d.toISOString(); // 2025-01-02T03:04:05.678Z -> 250102030405Z
  return tlv(
    0x17,
    Buffer.from(
      `${s.slice(2, 4)}${s.slice(5, 7)}${s.slice(8, 10)}${s.slice(11, 13)}${s.slice(14, 16)}${s.slice(17, 19)}Z`,
    ),
  );
}

function name(commonName: string, organizations: string[] = []): Buffer {
  const rdn = (type: string, value: string) => set(seq(oid(type), utf8(value)));
  return seq(...organizations.map((o) => rdn("2.5.4.10", o)), rdn("2.5.4.3", commonName));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), TRUE, octets(value)) : seq(oid(id), octets(value));
}

const ecdsaWithSha256 = seq(oid("1.2.840.10045.4.3.2"));

function pem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function newKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
}

const keyId = (spki: Buffer) => createHash("sha1").update(spki).digest();

export class TestCA {
  readonly certPem: string;
  readonly #key: KeyObject;
  readonly #name: Buffer;
  readonly #keyId: Buffer;

  constructor(commonName = "devicestreams-test-ca") {
    const { privateKey, publicKey } = newKey();
    const spki = publicKey.export({ type: "spki", format: "der" });
    this.#key = privateKey;
    this.#name = name(commonName);
    this.#keyId = keyId(spki);
    const extensions = [
      extension("2.5.29.19", true, seq(TRUE)), // basicConstraints: CA
      extension("2.5.29.15", true, bits(Buffer.from([0x06]), 1)), // keyUsage: keyCertSign, cRLSign
      extension("2.5.29.14", false, octets(this.#keyId)), // subjectKeyIdentifier
    ];
    this.certPem = this.#sign(this.#name, spki, extensions);
  }

  issue(req: CertRequest): IssuedCert {
    const { privateKey, publicKey } = newKey();
    const spki = publicKey.export({ type: "spki", format: "der" });
    const sans = [
      ...(req.dnsNames ?? []).map((d) => tlv(0x82, Buffer.from(d, "ascii"))),
      ...(req.ipv4Addresses ?? []).map((ip) => tlv(0x87, Buffer.from(ip.split(".").map(Number)))),
    ];
    const extensions = [
      extension("2.5.29.19", true, seq()), // basicConstraints: not a CA
      extension("2.5.29.15", true, bits(Buffer.from([0x80]), 7)), // keyUsage: digitalSignature
      extension("2.5.29.37", false, seq(oid(req.usage === "server" ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2"))),
      extension("2.5.29.35", false, seq(tlv(0x80, this.#keyId))), // authorityKeyIdentifier
      ...(sans.length ? [extension("2.5.29.17", false, seq(...sans))] : []),
    ];
    return {
      certPem: this.#sign(name(req.commonName, req.organizations), spki, extensions),
      keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    };
  }

  #sign(subject: Buffer, spki: Buffer, extensions: Buffer[]): string {
    const serial = randomBytes(16);
    serial[0] = (serial[0] & 0x7f) | 0x40; // positive and minimally encoded, as Go's parser insists
    const now = Date.now();
    const tbs = seq(
      explicit(0, tlv(0x02, Buffer.from([2]))), // version 3
      tlv(0x02, serial),
      ecdsaWithSha256,
      this.#name,
      seq(utcTime(new Date(now - 3600_000)), utcTime(new Date(now + 365 * 24 * 3600_000))),
      subject,
      spki,
      explicit(3, seq(...extensions)),
    );
    const signature = sign("sha256", tbs, this.#key);
    return pem("CERTIFICATE", seq(tbs, ecdsaWithSha256, bits(signature)));
  }
}

// Service-account tokens are signed with a bare key pair, not a certificate.
export function newSigningKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey } = newKey();
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString(),
  };
}
