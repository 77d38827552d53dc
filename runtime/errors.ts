// Errors a user can meet carry a stable, searchable code (DS_*, registered with its meaning in
// error-codes.ts) and a message that says the cause and what to do, in the manner of undici's
// UND_ERR_* and ws's WS_ERR_*. Between processes they travel as a detail `DS_CODE: message`
// (gRPC status details, a refusal's text), written and read only here.
import { type PeerCode, peerCode } from "./error-codes.ts";

export class DeviceStreamsError extends Error {
  readonly code: PeerCode;
  /** Whether retrying the same operation later can succeed. */
  readonly retryable: boolean;

  constructor(code: PeerCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DeviceStreamsError";
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** The one text form of a coded error: `DS_CODE: message`. */
export function errorDetail(code: PeerCode, message: string): string {
  return `${code}: ${message}`;
}

/** Reads a detail `errorDetail` wrote (a peer's gRPC status details); undefined for any other text. */
export function parseErrorDetail(details: string | undefined): { code: PeerCode; message: string } | undefined {
  const m = /^(DS_[A-Z_]+): ([\s\S]*)$/.exec(details ?? "");
  return m ? { code: peerCode(m[1], "DS_PROTOCOL"), message: m[2]! } : undefined;
}

export function describeError(err: unknown): string {
  if (err instanceof DeviceStreamsError) return errorDetail(err.code, err.message);
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
