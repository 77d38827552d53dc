// Which of the stream's services a Connect call asks for: its metadata names the service and, for
// a service of several ports, the port (proto/metadata.ts). The caller chose both, so they are
// checked here before anything else reads them: at most one value each, printable ASCII of
// bounded length, a decimal port. Whether the service is the stream's is the pairing's to say.
import { metadataKeys } from "../proto/metadata.ts";
import { printable } from "../runtime/printable.ts";

/** What a Connect call's metadata gives: grpc-js's Metadata has this shape. */
export interface CallMetadata {
  get(key: string): unknown[];
}

/** `service` undefined: the call named none (an older client), so it gets the stream's first. */
export type RequestedService = { ok: true; service?: string; port: number } | { ok: false; message: string };

/** A DNS label's 63 characters: an allow-list name is one. Longer is refused unread. */
const maxServiceChars = 63;
const printableAscii = /^[\x21-\x7e]+$/;

function single(md: CallMetadata, key: string): { value?: string; problem?: string } {
  const values = md.get(key);
  if (values.length === 0) return {};
  if (values.length > 1) return { problem: `${key} must be given once, not ${values.length} times` };
  const v = values[0];
  if (typeof v !== "string") return { problem: `${key} must be text` };
  return { value: v };
}

export function requestedService(md: CallMetadata): RequestedService {
  const service = single(md, metadataKeys.service);
  if (service.problem) return { ok: false, message: service.problem };
  const s = service.value;
  if (s !== undefined && (s.length > maxServiceChars || !printableAscii.test(s))) {
    return {
      ok: false,
      message: `${metadataKeys.service} must be a service name (printable, at most ${maxServiceChars} characters), not "${printable(s, maxServiceChars)}"`,
    };
  }
  const port = single(md, metadataKeys.port);
  if (port.problem) return { ok: false, message: port.problem };
  const p = port.value;
  if (p !== undefined && !(/^\d{1,5}$/.test(p) && Number(p) <= 65535)) {
    return {
      ok: false,
      message: `${metadataKeys.port} must be a port (decimal, 0 to 65535), not "${printable(p, 16)}"`,
    };
  }
  return { ok: true, service: s, port: p === undefined ? 0 : Number(p) };
}
