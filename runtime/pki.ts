// Small X.509 authority for TLS on every hop: the operator's CA signs relay serving certificates
// (and later device certificates); the quick start makes a throwaway CA. ECDSA P-256 keeps
// handshakes cheap. Keys are PKCS#8 PEM and never leave the process that made them unless the
// caller stores them in a Secret.
import { createHash, createPrivateKey, createPublicKey, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import "reflect-metadata"; // @peculiar/x509 resolves its parts through tsyringe, which needs it
import * as x509 from "@peculiar/x509";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

// Node's WebCrypto is the standard one; the cast only bridges the DOM and Node typings.
x509.cryptoProvider.set("default", webcrypto as never);

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface CertificateRequest {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** URI SANs, e.g. a device's identity `devicestreams://device/<ns>/<name>/<uid>`. */
  uris?: string[];
  usage: "server" | "client" | "both";
  validityMs?: number;
}

const day = 24 * 3600 * 1000;
// Clocks on edge devices drift; certificates start slightly in the past.
const backdateMs = 5 * 60 * 1000;

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

function signingKeyFrom(pem: string): CryptoKey {
  return createPrivateKey(pem).toCryptoKey(algorithm, false, ["sign"]) as CryptoKey;
}

export async function createCertificateAuthority(commonName: string, validityMs = 10 * 365 * day): Promise<KeyPairPem> {
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: algorithm,
    notBefore: new Date(now - backdateMs),
    notAfter: new Date(now + validityMs),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await keyPem(keys.privateKey) };
}

function usages(usage: CertificateRequest["usage"]): string[] {
  if (usage === "server") return [x509.ExtendedKeyUsage.serverAuth];
  if (usage === "client") return [x509.ExtendedKeyUsage.clientAuth];
  return [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
}

/** Signs a certificate for a public key made elsewhere (a device's CSR) or for a new key pair. */
async function sign(ca: KeyPairPem, req: CertificateRequest, publicKey: CryptoKey | x509.PublicKey): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const now = Date.now();
  const names: x509.JsonGeneralName[] = [
    ...(req.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(req.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(req.uris ?? []).map((value) => ({ type: "url" as const, value })),
  ];
  for (const ip of req.ipAddresses ?? []) if (!isIP(ip)) throw new Error(`"${ip}" is not an IP address`);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages(req.usage)),
    await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${req.commonName}`,
    issuer: caCert.subject,
    publicKey,
    signingKey: signingKeyFrom(ca.keyPem),
    signingAlgorithm: algorithm,
    notBefore: new Date(now - backdateMs),
    notAfter: new Date(now + (req.validityMs ?? 365 * day)),
    extensions,
  });
  return cert.toString("pem");
}

export async function issueCertificate(ca: KeyPairPem, req: CertificateRequest): Promise<KeyPairPem> {
  const keys = await generateKeys();
  return { certPem: await sign(ca, req, keys.publicKey), keyPem: await keyPem(keys.privateKey) };
}

/** Creates a key pair and a CSR for it; the key stays with the caller (a device's enrolment). */
export async function createCertificateRequest(commonName: string): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await generateKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: algorithm,
  });
  return { csrPem: csr.toString("pem"), keyPem: await keyPem(keys.privateKey) };
}

/** A CSR for a key the caller already holds: a device renews its certificate without a new key. */
export async function createCertificateRequestForKey(commonName: string, keyPem: string): Promise<string> {
  const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "der" });
  const publicKey = (await webcrypto.subtle.importKey("spki", spki, algorithm, true, ["verify"])) as CryptoKey;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys: { privateKey: signingKeyFrom(keyPem), publicKey },
    signingAlgorithm: algorithm,
  });
  return csr.toString("pem");
}

/** Hex SHA-256 of the SubjectPublicKeyInfo (DER) in a certificate or CSR (PEM). */
export function publicKeySha256(pem: string): string {
  const parsed = pem.includes("CERTIFICATE REQUEST")
    ? new x509.Pkcs10CertificateRequest(pem)
    : new x509.X509Certificate(pem);
  return createHash("sha256").update(Buffer.from(parsed.publicKey.rawData)).digest("hex");
}

/** Signs a CSR after checking its self-signature; the subject is set by the caller, not the CSR. */
export async function signCertificateRequest(ca: KeyPairPem, csrPem: string, req: CertificateRequest): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  if (!(await csr.verify())) throw new Error("the certificate request's signature does not verify");
  return sign(ca, req, csr.publicKey);
}

export function certificateExpiry(certPem: string): Date {
  return new x509.X509Certificate(certPem).notAfter;
}

export function certificateValidity(certPem: string): { notBefore: Date; notAfter: Date } {
  const cert = new x509.X509Certificate(certPem);
  return { notBefore: cert.notBefore, notAfter: cert.notAfter };
}
