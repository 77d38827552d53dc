// The browser terminal's own HTTP server, on a loopback address only: the page (with its one-time
// token on the first load, its cookie after), the assets, and the WebSocket each tab's terminal
// runs over. Every refusal names its DS_* code and what to do, on a page a person can read.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { RegisteredCode } from "../../runtime/error-codes.ts";
import { describeError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { Asset, AssetName } from "./assets.ts";
import { encodeServerMessage, maxMessageBytes, parseSize, type TerminalSize } from "./messages.ts";
import { PageAccess, type TokenRefusal } from "./page-access.ts";

export interface WebTerminalOptions {
  /** A loopback address. */
  host: string;
  /** 0 for any free port. */
  port: number;
  assets: Map<AssetName, Asset>;
  maxSessions: number;
  log: Logger;
  /** Runs one tab's terminal; resolves when it has ended, tunnel and all. */
  session(ws: WebSocket, size: TerminalSize): Promise<void>;
}

export interface WebTerminalServer {
  /** The one-time URL to open. */
  url: string;
  port: number;
  /** Terminals running now. */
  sessions(): number;
  /** Ends every terminal (their SSH sessions and tunnels), then stops listening. */
  close(): Promise<void>;
}

const headers = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-store",
};

const tokenAdvice: Record<TokenRefusal, string> = {
  missing:
    "this page opens only with the one-time URL that `kubectl devicestream web` printed (http://…/?token=…); open that URL",
  wrong: "the URL's token is not this terminal's: copy the whole URL that `kubectl devicestream web` printed",
  used: "this one-time URL has already been opened, and each opens once: use the tab that opened it (a reload keeps working there), or run `kubectl devicestream web` again for a new URL",
};

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function refusalPage(res: ServerResponse, status: number, code: RegisteredCode, message: string): void {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Refused: ${code}</title>
<style>body{font:16px system-ui,sans-serif;margin:3em auto;max-width:40em;padding:0 1em}code{font-size:.95em}</style>
</head><body><h1>Refused</h1><p><code>${code}</code>: ${escapeHtml(message)}</p></body></html>
`;
  res.writeHead(status, { ...headers, "Content-Type": "text/html; charset=utf-8" });
  res.end(body);
}

function refuseUpgrade(socket: Duplex, status: string, code: RegisteredCode, message: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${code}: ${message}\n`,
  );
}

export async function startWebTerminalServer(o: WebTerminalOptions): Promise<WebTerminalServer> {
  const active = new Set<Promise<void>>();
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes, perMessageDeflate: false });
  // Set once listening (the cookie's name and the Host check need the port), before any request.
  let access!: PageAccess;

  const serve = (res: ServerResponse, asset: Asset, extra: Record<string, string> = {}) => {
    res.writeHead(200, { ...headers, ...extra, "Content-Type": asset.type, "Content-Length": asset.body.length });
    res.end(asset.body);
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const host = req.headers.host;
    if (!access.hostAllowed(host)) {
      o.log.warn("request for another host refused", { host: host ?? "" });
      return refusalPage(
        res,
        403,
        "DS_WEB_FORBIDDEN",
        `this server answers only to the address it printed, not to Host "${host ?? ""}"`,
      );
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...headers, Allow: "GET, HEAD" });
      return res.end();
    }
    const url = new URL(req.url ?? "/", `http://${host}`);
    const cookie = req.headers.cookie;
    if (url.pathname === "/") {
      const token = url.searchParams.get("token");
      // A valid cookie reloads the page; a token, even beside a cookie, must be the unspent one.
      if (token === null && access.hasSession(cookie)) return serve(res, o.assets.get("index.html")!);
      const r = access.redeem(token);
      if ("refused" in r) {
        o.log.warn("terminal page refused", { code: "DS_WEB_TOKEN", because: `${r.refused} token` });
        return refusalPage(res, 403, "DS_WEB_TOKEN", tokenAdvice[r.refused]);
      }
      o.log.info("terminal page opened; its one-time URL is spent");
      return serve(res, o.assets.get("index.html")!, { "Set-Cookie": r.cookie });
    }
    const asset = url.pathname.startsWith("/assets/") && o.assets.get(url.pathname.slice(8) as AssetName);
    if (asset && url.pathname !== "/assets/index.html") {
      if (!access.hasSession(cookie)) {
        return refusalPage(res, 403, "DS_WEB_FORBIDDEN", "no session cookie: open the URL the command printed");
      }
      return serve(res, asset);
    }
    res.writeHead(404, { ...headers, "Content-Type": "text/plain; charset=utf-8" });
    res.end("not found\n");
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    const host = req.headers.host;
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== "/ws") return refuseUpgrade(socket, "404 Not Found", "DS_WEB_FORBIDDEN", "no such endpoint");
    const refuse = (why: string) => {
      o.log.warn("terminal WebSocket refused", { code: "DS_WEB_FORBIDDEN", reason: why });
      refuseUpgrade(socket, "403 Forbidden", "DS_WEB_FORBIDDEN", why);
    };
    if (!access.originAllowed(req.headers.origin, host)) {
      return refuse(`origin "${req.headers.origin ?? ""}" (Host "${host ?? ""}") is not this terminal's page`);
    }
    if (!access.hasSession(req.headers.cookie)) return refuse("no valid session cookie");
    let size: TerminalSize;
    try {
      size = parseSize(Number(url.searchParams.get("cols")), Number(url.searchParams.get("rows")));
    } catch (err) {
      return refuseUpgrade(socket, "400 Bad Request", "DS_WEB_BAD_MESSAGE", (err as Error).message);
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (active.size >= o.maxSessions) {
        // Open, then closed with the reason: the page can show a refusal after the handshake, not before.
        o.log.warn("terminal refused: session limit", { code: "DS_WEB_SESSION_LIMIT", sessions: active.size });
        ws.send(
          encodeServerMessage({
            type: "error",
            code: "DS_WEB_SESSION_LIMIT",
            message: `${active.size} terminals are open, the most --max-sessions allows; close one, or run the command with a higher --max-sessions`,
          }),
        );
        ws.close(1013, "session limit");
        return;
      }
      // ws reports a bad frame or an oversized message here, then closes (1002, 1009): logged, not thrown.
      ws.on("error", (err) => o.log.warn("terminal WebSocket error", { reason: err.message }));
      sockets.add(ws);
      const run = o
        .session(ws, size)
        .catch((err: unknown) => o.log.error("terminal session failed", { reason: describeError(err) }))
        .finally(() => {
          active.delete(run);
          sockets.delete(ws);
        });
      active.add(run);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : o.port;
  access = new PageAccess(o.host, port);
  const hostPart = o.host.includes(":") ? `[${o.host}]` : o.host;
  return {
    url: `http://${hostPart}:${port}/?token=${access.token}`,
    port,
    sessions: () => active.size,
    close: async () => {
      for (const ws of sockets) ws.close(1001, "the terminal server is stopping");
      await Promise.allSettled([...active]);
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
