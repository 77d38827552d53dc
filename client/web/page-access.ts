// Who may use the browser terminal's server: the one browser that opened the printed URL first.
// Its one-time token becomes an HttpOnly, SameSite=Strict cookie on that first load and is spent;
// every later request (a reload, the assets, the WebSocket) shows the cookie instead. Host and
// Origin are checked too: a page on another site, or a DNS name rebound to 127.0.0.1, gets nothing.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export type TokenRefusal = "missing" | "wrong" | "used";

const secret = () => randomBytes(32).toString("base64url");

function sameSecret(given: string, expected: string): boolean {
  // Digests first: equal lengths for timingSafeEqual, and no early exit on the first wrong byte.
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** `name=value` pairs of a Cookie header; the first of a repeated name wins, as browsers send the most specific first. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export class PageAccess {
  /** The URL's one-time token. */
  readonly token = secret();
  /** Cookies are shared by every port of a host: the port in the name keeps two terminals apart. */
  readonly cookieName: string;
  private readonly hosts: Set<string>;
  private spent = false;
  private session: string | undefined;

  /** `host` as the server listens (a loopback address); `port` its real port. */
  constructor(host: string, port: number) {
    this.cookieName = `devicestreams_web_${port}`;
    const names = [host.includes(":") ? `[${host}]` : host];
    // The browser may be given localhost for a loopback address; both name the same server.
    if (host === "127.0.0.1" || host === "::1") names.push("localhost");
    this.hosts = new Set(names.map((n) => `${n}:${port}`));
  }

  /** The first load's token: on success, the Set-Cookie header that replaces it. */
  redeem(token: string | null): { cookie: string } | { refused: TokenRefusal } {
    if (!token) return { refused: "missing" };
    if (!sameSecret(token, this.token)) return { refused: "wrong" };
    if (this.spent) return { refused: "used" };
    this.spent = true;
    this.session = secret();
    // No Max-Age: the cookie ends with the browser session, and the server forgets it when it stops.
    return { cookie: `${this.cookieName}=${this.session}; Path=/; HttpOnly; SameSite=Strict` };
  }

  hasSession(cookieHeader: string | undefined): boolean {
    const value = readCookie(cookieHeader, this.cookieName);
    return this.session !== undefined && value !== undefined && sameSecret(value, this.session);
  }

  /** The Host header names this server (not a DNS name that an attacker's page rebound to it). */
  hostAllowed(host: string | undefined): boolean {
    return host !== undefined && this.hosts.has(host.toLowerCase());
  }

  /** A WebSocket's Origin is this server's own page, as reached through the same Host. */
  originAllowed(origin: string | undefined, host: string | undefined): boolean {
    return this.hostAllowed(host) && origin === `http://${host!.toLowerCase()}`;
  }
}
