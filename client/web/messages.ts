// The WebSocket between the terminal page and its server. Binary messages are terminal bytes, as
// they are, in both directions (no encoding on the byte path); text messages are JSON control
// messages, validated here with bounds before anything acts on them.
import type { PeerCode } from "../../runtime/error-codes.ts";
import { DeviceStreamsError } from "../../runtime/errors.ts";

/** ws's maxPayload: a bigger message closes the socket (1009). The page sends input in smaller chunks. */
export const maxMessageBytes = 64 * 1024;
/** What the page sends at most per binary message (a large paste is split). */
export const inputChunkBytes = 16 * 1024;
/** Bounds of a PTY's size: larger is no real screen, and sshd would allocate for it. */
export const maxCols = 1000;
export const maxRows = 500;

export interface TerminalSize {
  cols: number;
  rows: number;
}

/** From the page. */
export type PageMessage = ({ type: "resize" } & TerminalSize) | { type: "host-key"; accept: boolean };

/** To the page. */
export type ServerMessage =
  | { type: "hello"; stream: string; target: string }
  | { type: "status"; text: string }
  | { type: "host-key"; host: string; keyType: string; fingerprint: string; knownHosts: string }
  | { type: "error"; code: PeerCode; message: string }
  | { type: "exit"; status?: number; signal?: string };

function bad(why: string): never {
  throw new DeviceStreamsError("DS_WEB_BAD_MESSAGE", why);
}

function dimension(v: unknown, name: string, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max) {
    bad(`${name} must be an integer 1–${max}, not ${JSON.stringify(v)}`);
  }
  return v;
}

export function parseSize(cols: unknown, rows: unknown): TerminalSize {
  return { cols: dimension(cols, "cols", maxCols), rows: dimension(rows, "rows", maxRows) };
}

/** A control message from the page, or DS_WEB_BAD_MESSAGE naming what is wrong with it. */
export function parsePageMessage(text: string): PageMessage {
  if (text.length > 1024) bad(`a control message of ${text.length} characters (at most 1024)`);
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    bad("a control message that is not JSON");
  }
  if (typeof m !== "object" || m === null) bad("a control message that is not a JSON object");
  const o = m as Record<string, unknown>;
  switch (o.type) {
    case "resize":
      return { type: "resize", ...parseSize(o.cols, o.rows) };
    case "host-key":
      if (typeof o.accept !== "boolean") bad("host-key needs accept: true or false");
      return { type: "host-key", accept: o.accept };
    default:
      return bad(`an unknown control message type ${JSON.stringify(o.type)}`);
  }
}

export const encodeServerMessage = (m: ServerMessage): string => JSON.stringify(m);
