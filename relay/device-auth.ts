// The device side of a stream bound to a Device (relay.json `device`) proves itself by its TLS
// client certificate, issued by the hub's CA, never by a token: the stream's Secret, which users
// who may connect can read, then holds nothing that lets them pose as the device.
import { createHash } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { deviceFromCertificate, type PresentedCertificate } from "../runtime/device-certificate.ts";
import type { ErrorCode } from "../runtime/error-codes.ts";
import type { BoundDevice } from "./contract.ts";

export type DeviceAuthResult = { ok: true; identity: string } | { ok: false; code: ErrorCode; message: string };

const tlsErrors: Record<string, string> = {
  CERT_HAS_EXPIRED: "it expired; the agent renews it while it reaches the hub, or enrol it again",
  CERT_NOT_YET_VALID: "it is not valid yet; check the device's clock",
  INVALID_PURPOSE: "it is not a client certificate, so it names no device",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "it was not issued by this cluster's hub; check the agent dials this cluster",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "it was not issued by this cluster's hub; check the agent dials this cluster",
  CERT_SIGNATURE_FAILURE: "its signature does not verify against this cluster's hub",
};

/**
 * The TLS verification error of each open connection whose client certificate did not verify,
 * by the peer address a call reports: grpc-js gives such calls no certificate at all.
 */
export class CertificateRejections {
  private readonly byPeer = new Map<string, string>();

  /** Call with each accepted TLS connection. */
  watch(socket: TLSSocket): void {
    if (socket.authorized || !socket.getPeerCertificate()?.raw) return;
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.byPeer.set(peer, String(socket.authorizationError));
    socket.once("close", () => this.byPeer.delete(peer));
  }

  reason(peer: string): string | undefined {
    return this.byPeer.get(peer);
  }
}

/** Verified certificates by the SHA-256 of their DER: an Accept per connection must not re-verify. */
const cacheLimit = 64;

export class DeviceAuthenticator {
  private readonly caPem: string;
  private readonly verified = new Map<string, PresentedCertificate>();

  constructor(caPem: string) {
    this.caPem = caPem;
  }

  /** `tlsError`: why TLS did not verify the certificate the caller showed (grpc-js then hides it). */
  async check(
    bound: BoundDevice,
    certDer: Buffer | undefined,
    tlsError?: string,
    now = Date.now(),
  ): Promise<DeviceAuthResult> {
    if (!certDer?.length && tlsError) {
      return {
        ok: false,
        code: "DS_DEVICE_CERT_INVALID",
        message: `the device certificate was refused: ${tlsErrors[tlsError] ?? tlsError}`,
      };
    }
    if (!certDer?.length) {
      // Unauthenticated: the message must not say which Device or stream lives here.
      return {
        ok: false,
        code: "DS_DEVICE_IDENTITY_REQUIRED",
        message:
          "this stream is bound to an enrolled Device: its device side must present that Device's certificate, issued by the hub (the agent does so in hub mode); a destination token is not accepted",
      };
    }
    let cert: PresentedCertificate;
    try {
      cert = await this.verify(certDer, now);
    } catch (err) {
      return {
        ok: false,
        code: "DS_DEVICE_CERT_INVALID",
        message: `the device certificate was refused: ${(err as Error).message}; check the agent's clock, or enrol it again`,
      };
    }
    const named = `Device "${cert.name}" in namespace "${cert.namespace}"`;
    if (cert.namespace !== bound.namespace || cert.name !== bound.name || (bound.uid && cert.uid !== bound.uid)) {
      return {
        ok: false,
        code: "DS_DEVICE_IDENTITY_MISMATCH",
        message: `the certificate names ${named} (UID ${cert.uid}), not the Device this stream is bound to`,
      };
    }
    if (bound.publicKeySHA256 && cert.publicKeySha256 !== bound.publicKeySHA256) {
      return {
        ok: false,
        code: "DS_DEVICE_IDENTITY_MISMATCH",
        message: `the certificate's key is not the one ${named} had enrolled when the stream was made (it was enrolled again since); open a new stream`,
      };
    }
    return { ok: true, identity: `${cert.namespace}/${cert.name}/${cert.uid}/${cert.publicKeySha256}` };
  }

  private async verify(der: Buffer, now: number): Promise<PresentedCertificate> {
    const key = createHash("sha256").update(der).digest("hex");
    const hit = this.verified.get(key);
    if (hit) {
      if (now >= hit.notAfter.getTime()) {
        this.verified.delete(key);
        throw new Error(`it expired at ${hit.notAfter.toISOString()}`);
      }
      return hit;
    }
    const cert = await deviceFromCertificate(der, this.caPem, new Date(now));
    if (this.verified.size >= cacheLimit) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(key, cert);
    return cert;
  }
}
