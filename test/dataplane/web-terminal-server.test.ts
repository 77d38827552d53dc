// The browser terminal's server with Node's own HTTP and WebSocket clients as the browser: the
// one-time URL, the cookie, Host and Origin checks, the bounds on messages and sessions, and real
// SSH sessions to a real sshd behind it (a TCP socket stands in for the tunnel; the end-to-end
// test drives Chromium through a real stream).
import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { duplexPair } from "node:stream";
import WebSocket from "ws";
import { loadWebAssets } from "../../client/web/assets.ts";
import type { ServerMessage } from "../../client/web/messages.ts";
import { startWebTerminalServer, type WebTerminalServer } from "../../client/web/server.ts";
import { sshAuth } from "../../client/web/ssh-auth.ts";
import { runTerminalSession, type SessionTarget } from "../../client/web/terminal-session.ts";
import { DeviceStreamsError } from "../../runtime/errors.ts";
import { createLogger } from "../../runtime/log.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { waitFor } from "../helpers/wait.ts";

interface Client {
  ws: WebSocket;
  text: () => string;
  messages: ServerMessage[];
  closed: Promise<{ code: number; reason: string }>;
}

describe("browser terminal server", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let server: WebTerminalServer;
  let target: SessionTarget;
  let base: string;
  let cookie = "";
  const clients: WebSocket[] = [];

  before(async () => {
    sshd = await startSshd();
    target = {
      openTunnel: () => {
        const socket = connect(sshd.port, "127.0.0.1");
        const closed = new Promise<{ bytesIn: number; bytesOut: number }>((resolve) =>
          socket.once("close", () => resolve({ bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten })),
        );
        return { socket, error: () => undefined, closed };
      },
      auth: sshAuth({ user: sshd.user, identity: sshd.userKeyPath, sshDir: "/nonexistent" }),
      hostKeyName: "edge-1",
      knownHostsFile: join(sshd.dir, "web_known_hosts"),
      stream: "ns/web",
    };
    const log = createLogger("web-test");
    server = await startWebTerminalServer({
      host: "127.0.0.1",
      port: 0,
      assets: loadWebAssets(),
      maxSessions: 2,
      log,
      session: (ws, size) => runTerminalSession(ws, size, target, log),
    });
    base = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    for (const ws of clients) ws.terminate();
    await server?.close();
    await sshd?.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>(
      (resolve, reject) => {
        const req = request(`${base}${path}`, { headers }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => {
            body += d;
          });
          res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        });
        req.on("error", reject);
        req.end();
      },
    );

  const open = (o: { origin?: string; cookie?: string; query?: string } = {}) =>
    new Promise<Client>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?${o.query ?? "cols=80&rows=24"}`, {
        origin: o.origin ?? base,
        headers: o.cookie === "" ? {} : { cookie: o.cookie ?? cookie },
      });
      clients.push(ws);
      let out = "";
      const messages: ServerMessage[] = [];
      const closed = new Promise<{ code: number; reason: string }>((done) =>
        ws.once("close", (code, reason) => done({ code, reason: reason.toString() })),
      );
      ws.on("message", (data: Buffer, binary: boolean) => {
        if (binary) out += data.toString();
        else messages.push(JSON.parse(data.toString()) as ServerMessage);
      });
      ws.once("open", () => resolve({ ws, text: () => out, messages, closed }));
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => {
          body += d;
        });
        res.on("end", () => reject(new Error(`${res.statusCode} ${body}`)));
      });
      ws.once("error", () => {});
    });

  const shellReady = async (c: Client) => {
    const m = await waitFor(
      "the host key question or the shell",
      () =>
        c.messages.find((x) => x.type === "host-key" || (x.type === "status" && /^connected/.test(x.text))) ||
        c.text() ||
        undefined,
    );
    if (typeof m === "object" && m.type === "host-key") c.ws.send(JSON.stringify({ type: "host-key", accept: true }));
  };
  const runLine = async (c: Client, line: string, marker: RegExp) => {
    c.ws.send(Buffer.from(`${line}\n`));
    return waitFor(`${marker} in the terminal`, () => marker.exec(c.text()), 15_000);
  };

  it("the printed URL opens the page once, and sets an HttpOnly SameSite=Strict cookie in place of its token", async () => {
    assert.match(server.url, new RegExp(`^${base}/\\?token=[A-Za-z0-9_-]{43}$`));
    const first = await get(server.url.slice(base.length));
    assert.equal(first.status, 200);
    assert.match(first.body, /<script type="module" src="\/assets\/terminal.js">/);
    assert.match(String(first.headers["content-security-policy"]), /script-src 'self'; .*frame-ancestors 'none'/);
    assert.equal(first.headers["referrer-policy"], "no-referrer");
    const setCookie = (first.headers["set-cookie"] as string[])[0]!;
    assert.match(setCookie, new RegExp(`^devicestreams_web_${server.port}=\\S+; Path=/; HttpOnly; SameSite=Strict$`));
    cookie = setCookie.split(";")[0]!;

    const again = await get(server.url.slice(base.length));
    assert.equal(again.status, 403, "the same URL a second time");
    assert.match(again.body, /DS_WEB_TOKEN<\/code>: this one-time URL has already been opened/);
    const againWithCookie = await get(server.url.slice(base.length), { cookie });
    assert.equal(againWithCookie.status, 403, "a spent token is refused even beside the cookie");

    const none = await get("/");
    assert.equal(none.status, 403);
    assert.match(none.body, /DS_WEB_TOKEN<\/code>: this page opens only with the one-time URL/);
    const wrong = await get("/?token=guess");
    assert.equal(wrong.status, 403);
    assert.match(wrong.body, /the URL&#39;s token is not this terminal&#39;s/);

    const reload = await get("/", { cookie });
    assert.equal(reload.status, 200, "the cookie reloads the page");
  });

  it("serves the assets to the cookie only, with their types; nothing to another Host", async () => {
    for (const [name, type] of [
      ["xterm.mjs", "text/javascript"],
      ["addon-fit.mjs", "text/javascript"],
      ["xterm.css", "text/css"],
      ["terminal.js", "text/javascript"],
      ["terminal.css", "text/css"],
    ] as const) {
      const r = await get(`/assets/${name}`, { cookie });
      assert.equal(r.status, 200, name);
      assert.match(String(r.headers["content-type"]), new RegExp(`^${type}`), name);
      assert.equal((await get(`/assets/${name}`)).status, 403, `${name} without the cookie`);
    }
    assert.match((await get("/assets/xterm.mjs", { cookie })).body, /export\s*\{[^}]*as Terminal/);
    assert.equal((await get("/assets/nothing.js", { cookie })).status, 404);
    assert.equal((await get("/assets/index.html", { cookie })).status, 404);
    const rebound = await get("/", { cookie, host: `attacker.example:${server.port}` });
    assert.equal(rebound.status, 403);
    assert.match(rebound.body, /DS_WEB_FORBIDDEN/);
  });

  it("refuses a WebSocket without the cookie, from another origin, or with a size out of bounds", async () => {
    await assert.rejects(open({ cookie: "" }), /^Error: 403 DS_WEB_FORBIDDEN: no valid session cookie/);
    await assert.rejects(
      open({ origin: "http://evil.example" }),
      /^Error: 403 DS_WEB_FORBIDDEN: origin "http:\/\/evil.example"/,
    );
    await assert.rejects(open({ origin: `http://localhost:${server.port}` }), /403/, "an origin other than the Host");
    await assert.rejects(open({ query: "cols=0&rows=24" }), /^Error: 400 DS_WEB_BAD_MESSAGE: cols must be/);
    await assert.rejects(open({ query: "" }), /400/);
    assert.equal(server.sessions(), 0);
  });

  it("a terminal asks about the unknown host key, runs commands, follows resizes; a bad message ends only its own", async () => {
    const a = await open();
    await shellReady(a);
    const hello = a.messages.find((m) => m.type === "hello");
    assert.deepEqual(hello, { type: "hello", stream: "ns/web", target: `${sshd.user}@edge-1` });
    const asked = a.messages.find((m) => m.type === "host-key");
    assert.ok(asked && asked.type === "host-key");
    assert.match(asked.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.match((await runLine(a, "echo a-$((40+2))", /a-42/))[0], /a-42/);
    assert.equal((await runLine(a, "echo size $(stty size)", /size (\d+ \d+)/))[1], "24 80");
    a.ws.send(JSON.stringify({ type: "resize", cols: 120, rows: 33 }));
    assert.equal((await runLine(a, "echo resized $(stty size)", /resized (\d+ \d+)/))[1], "33 120");

    // A second terminal knows the key now; a bad message closes it, and the first goes on.
    const b = await open();
    await shellReady(b);
    assert.ok(!b.messages.some((m) => m.type === "host-key"));
    await runLine(b, "echo b-$((1+1))", /b-2/);
    b.ws.send(JSON.stringify({ type: "resize", cols: 100000, rows: 10 }));
    const closed = await b.closed;
    assert.equal(closed.code, 1008);
    assert.ok(b.messages.some((m) => m.type === "error" && m.code === "DS_WEB_BAD_MESSAGE"));
    await runLine(a, "echo still-$((3*3))", /still-9/);
    await waitFor("the bad terminal's session to end", () => server.sessions() === 1);
  });

  it("bounds the number of terminals and the size of a message", async () => {
    await waitFor("one terminal open", () => server.sessions() === 1);
    const second = await open();
    await shellReady(second);
    const third = await open();
    const refused = await third.closed;
    assert.equal(refused.code, 1013);
    const error = third.messages.find((m) => m.type === "error");
    assert.ok(error && error.type === "error");
    assert.equal(error.code, "DS_WEB_SESSION_LIMIT");
    assert.match(error.message, /2 terminals are open, the most --max-sessions allows/);

    second.ws.send(Buffer.alloc(64 * 1024 + 1));
    assert.equal((await second.closed).code, 1009, "ws refuses a message over maxPayload");
  });

  it("closing a terminal's WebSocket ends its shell", async () => {
    await waitFor("one terminal open", () => server.sessions() === 1);
    const c = await open();
    await shellReady(c);
    const pid = Number((await runLine(c, "echo pid-$$", /pid-(\d+)/))[1]);
    assert.doesNotThrow(() => process.kill(pid, 0), "the shell runs");
    c.ws.close();
    await waitFor(`the shell (pid ${pid}) to end`, () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    await waitFor("the session to end", () => server.sessions() === 1);
  });

  it("a tunnel that fails (here: the relay refusing the user) reaches the page with its code", async () => {
    const log = createLogger("web-test");
    const refusal = new DeviceStreamsError("DS_USER_FORBIDDEN", 'user "carol" may not connect to devicestreams/web');
    const failing = await startWebTerminalServer({
      host: "127.0.0.1",
      port: 0,
      assets: loadWebAssets(),
      maxSessions: 1,
      log,
      session: (ws, size) =>
        runTerminalSession(
          ws,
          size,
          {
            ...target,
            // As the bridge does on a refused call: the error is known, then its end of the pair is destroyed.
            openTunnel: () => {
              const [socket, bridged] = duplexPair();
              setImmediate(() => bridged.destroy());
              return { socket, error: () => refusal, closed: Promise.resolve({ bytesIn: 0, bytesOut: 0 }) };
            },
          },
          log,
        ),
    });
    try {
      const page = await fetch(failing.url);
      const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
      const origin = `http://127.0.0.1:${failing.port}`;
      const ws = new WebSocket(`ws://127.0.0.1:${failing.port}/ws?cols=80&rows=24`, { origin, headers: { cookie } });
      const messages: ServerMessage[] = [];
      ws.on("message", (data: Buffer, binary: boolean) => {
        if (!binary) messages.push(JSON.parse(data.toString()) as ServerMessage);
      });
      const code = await new Promise<number>((resolve) => ws.once("close", resolve));
      assert.equal(code, 1011);
      const error = messages.find((m) => m.type === "error");
      assert.deepEqual(error, { type: "error", code: "DS_USER_FORBIDDEN", message: refusal.message });
    } finally {
      await failing.close();
    }
  });

  it("stopping the server ends every terminal", async () => {
    const open1 = clients.filter((ws) => ws.readyState === WebSocket.OPEN);
    assert.ok(open1.length >= 1);
    const ended = open1.map((ws) => new Promise((resolve) => ws.once("close", resolve)));
    await server.close();
    assert.deepEqual(
      await Promise.all(ended),
      open1.map(() => 1001),
    );
    assert.equal(server.sessions(), 0);
  });
});
