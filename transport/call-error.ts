// Turns a failed gRPC call to the relay or the hub into our error. The advice depends on what was
// dialled and how the user named its CA and TLS name: `--ca`/`--server-name` for a relay,
// `--hub-ca`/`--hub-server-name` for the agent's hub, or nothing at all for a relay the hub
// offered (the offer carries both), so each caller says which it dialled.
import { status } from "@grpc/grpc-js";
import type { ErrorCode } from "../runtime/error-codes.ts";
import { DeviceStreamsError, parseErrorDetail } from "../runtime/errors.ts";
import { printable } from "../runtime/printable.ts";

export interface DialledServer {
  server: "relay" | "hub";
  /** The flags that named its CA and TLS name; undefined when the hub's offer gave both. */
  flags?: { ca: string; serverName: string };
}

export const relayFromFlags: DialledServer = { server: "relay", flags: { ca: "--ca", serverName: "--server-name" } };
export const hubFromFlags: DialledServer = {
  server: "hub",
  flags: { ca: "--hub-ca", serverName: "--hub-server-name" },
};
export const relayFromOffer: DialledServer = { server: "relay" };

const servers = {
  relay: {
    unavailable: "DS_RELAY_UNAVAILABLE",
    lost: "DS_RELAY_LOST",
    caFile: "the stream's ca.crt",
    wrongCa: "another stream's or cluster's",
  },
  hub: {
    unavailable: "DS_HUB_UNAVAILABLE",
    lost: "DS_HUB_LOST",
    caFile: "the operator CA's tls.crt",
    wrongCa: "another cluster's",
  },
} as const;

// grpc-js reports a failed TLS handshake only as text inside an UNAVAILABLE status ("No
// connection established. Last error: Error: unable to verify the first certificate; if the root
// CA is installed locally, try running Node.js with --use-system-ca ..."). Read as "unavailable"
// that sends people hunting for a network fault, and Node's hint is wrong for a server whose CA
// is given by a flag or an offer: name the cause instead. OpenSSL's verify texts are stable.
const untrustedCertificate =
  /unable to verify the first certificate|unable to get (?:local )?issuer certificate|self[- ]signed certificate|certificate has expired|certificate is not yet valid|certificate signature failure|certificate has been revoked|unsuitable certificate purpose/i;
const wrongCertificateName = /does not match certificate's altnames/i;

/** The TLS library's own words from a grpc-js connection failure, without grpc-js's wrapping. */
function tlsReason(details: string): string {
  const m =
    /Last error: (?:\w*Error(?: \[\w+\])?: )?([\s\S]*?)(?:; if the root CA is installed locally[\s\S]*|\.? Resolution note:[\s\S]*)?$/.exec(
      details,
    );
  return (m?.[1] ?? details).trim();
}

/** The error for a call's failure status; the far end puts `DS_CODE: message` in details. */
export function callError(err: { code: status; details: string }, dialled: DialledServer): DeviceStreamsError {
  const details = err.details ?? "";
  const coded = parseErrorDetail(details);
  // The far end's words may be a device's (a refusal the relay passed on): never raw to a terminal.
  if (coded) {
    return new DeviceStreamsError(coded.code, printable(coded.message), { retryable: err.code === status.UNAVAILABLE });
  }
  const { server, flags } = dialled;
  const known = servers[server];
  if (err.code === status.UNAVAILABLE && untrustedCertificate.test(details)) {
    const advice = flags
      ? `check that ${flags.ca} names the CA that issued the ${server}'s certificate (${known.caFile}), not ${known.wrongCa}`
      : `the CA came with the hub's offer (${known.caFile}), so the ${server} at the offered address serves a certificate that CA did not issue`;
    return new DeviceStreamsError(
      "DS_TLS_UNTRUSTED",
      `the ${server}'s certificate is not trusted (${tlsReason(details)}); ${advice}`,
    );
  }
  if (err.code === status.UNAVAILABLE && wrongCertificateName.test(details)) {
    const advice = flags
      ? `dial a name or IP the certificate lists, or pass ${flags.serverName} with one`
      : "the address and name came with the hub's offer, so the certificate and the offer disagree";
    return new DeviceStreamsError(
      "DS_TLS_NAME_MISMATCH",
      `the ${server}'s certificate is not valid for the address dialled (${tlsReason(details)}); ${advice}`,
    );
  }
  // "Connection dropped": the server was reached and the connection later lost (killed,
  // restarted, network gone, or silent past the keepalive timeout). The address and CA were fine.
  // A server killed with bytes unread in its socket resets it instead: grpc-js then gives only the
  // socket's error ("read ECONNRESET"); a connection never made says "No connection established".
  if (err.code === status.UNAVAILABLE && /^(?:Connection dropped|read ECONNRESET|write EPIPE)/.test(details)) {
    return new DeviceStreamsError(
      known.lost,
      `the connection to the ${server} was lost (the ${server} stopped or restarted, the network failed, or it stopped answering keepalive pings); connect again`,
      { retryable: true },
    );
  }
  if (err.code !== status.UNAVAILABLE) {
    const code: ErrorCode = `DS_GRPC_${(status[err.code] as keyof typeof status | undefined) ?? err.code}`;
    return new DeviceStreamsError(code, printable(details) || `the call to the ${server} failed`);
  }
  const advice = flags
    ? `check the ${server} address, that the ${server} runs, and that ${flags.ca} names its CA`
    : `check that the ${server} runs and that this device reaches the address the hub offered`;
  return new DeviceStreamsError(
    known.unavailable,
    `${printable(details) || `the call to the ${server} failed`}; ${advice}`,
    {
      retryable: true,
    },
  );
}
