// The browser terminal end to end: the whole system on loopback (API server, operator, relay Pod
// run by the kubelet stand-in, an enrolled agent in front of a real sshd), `kubectl devicestream
// web` as a user runs it, and a real headless Chromium (Debian's) driven over the DevTools
// Protocol as a person would: open the printed URL, accept the unknown host key after reading its
// fingerprint, type a command, read its output from the page's xterm buffer, resize the window,
// close the tab. Then the bad input of issue 15 part 5: the URL again, no token, a wrong token,
// each refused clearly while another terminal keeps working.
//
// `WEB_TERMINAL_SCREENSHOT=docs/images/web-terminal.png` also writes the docs' screenshot.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Chromium, type Page, startChromium } from "../helpers/chromium.ts";
import { stopAfterTest } from "../helpers/cleanup.ts";
import { type HubAgent, startHubAgent } from "../helpers/hub-agent.ts";
import { metric } from "../helpers/robustness.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";
import { System } from "../helpers/system.ts";
import { waitFor } from "../helpers/wait.ts";

const ns = "e2e-web";

/** The page's terminal buffer from line `from` on, as xterm.js holds it. */
const bufferText = (page: Page, from = 0) =>
  page.evaluate<string>(`(() => {
    const b = terminal.buffer.active;
    const lines = [];
    for (let i = ${from}; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
    return lines.join("\\n");
  })()`);
/** The buffer line the cursor is on: what a command typed now writes from. */
const cursorLine = (page: Page) =>
  page.evaluate<number>("terminal.buffer.active.baseY + terminal.buffer.active.cursorY");

const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

describe("end to end: kubectl devicestream web, a terminal in a real headless Chromium", function () {
  this.timeout(240_000);
  let sys: System;
  let sshd: Sshd;
  let chromium: Chromium;
  let edge: HubAgent | undefined;
  let web: ChildProcess | undefined;
  let webOut = "";
  let agentMetricsPort = 0;
  let url = "";
  const knownHosts = () => join(sshd.dir, "web_known_hosts");

  before(async function () {
    this.timeout(180_000);
    [sys, sshd, chromium] = await Promise.all([System.start({ namespace: ns }), startSshd(), startChromium()]);
    // An empty known_hosts, as a user's may be: the device's key is unknown at first.
    writeFileSync(knownHosts(), "");
    edge = await startHubAgent(sys, { namespace: ns, device: "edge-1", allow: [`ssh=${sshd.address}`] });
    agentMetricsPort = Number((await edge.agent!.waitFor(/ready metricsPort=(\d+)/))[1]);
    const open = await sys.kubectl(
      ["devicestream", "open", "edge-1", "--service", "ssh", "--name", "web", "-n", ns, "--timeout", "60s"],
      { kubeconfig: sys.userKubeconfig },
    );
    assert.equal(open.code, 0, open.stdout + open.stderr);
    // As a user runs it: kubectl finds the plugin on PATH. No agent: the key comes from --identity.
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: sys.path };
    delete env.SSH_AUTH_SOCK;
    web = spawn(
      "kubectl",
      [
        "devicestream",
        "web",
        "web",
        `--kubeconfig=${sys.userKubeconfig}`,
        "-n",
        ns,
        "--user",
        sshd.user,
        "--identity",
        sshd.userKeyPath,
        "--known-hosts",
        knownHosts(),
        "--max-sessions",
        "3",
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    web.stdout!.on("data", (c: Buffer) => {
      webOut += c.toString();
    });
    web.stderr!.on("data", (c: Buffer) => {
      webOut += c.toString();
    });
    url = await waitFor("the web command's URL", () => {
      if (web!.exitCode !== null) throw new Error(`kubectl devicestream web exited:\n${webOut}`);
      return /^ {2}(http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)$/m.exec(webOut)?.[1];
    });
  });
  after(async () => {
    web?.kill("SIGTERM");
    await chromium?.stop();
    await edge?.stop();
    await sys?.stop();
    await sshd?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      console.error(await sys.dump());
      console.error(`----- agent -----\n${edge?.agent?.logs.slice(-10_000)}`);
      console.error(`----- sshd -----\n${sshd.logs().slice(-5_000)}`);
      console.error(`----- kubectl devicestream web -----\n${webOut.slice(-10_000)}`);
      console.error(`----- chromium -----\n${chromium.logs().slice(-5_000)}`);
    }
  });

  /** Types a line into the page, and waits for `marker` in the terminal buffer after what was there before. */
  const run = async (page: Page, line: string, marker: RegExp): Promise<RegExpExecArray> => {
    // As a person would: type at the prompt, not ahead of it.
    await waitFor("the shell's prompt", () => page.evaluate<boolean>("terminal.buffer.active.cursorX > 0"), 20_000);
    const from = await cursorLine(page);
    await page.typeLine(line);
    return waitFor(
      `${marker} in the page's terminal`,
      async () => marker.exec(await bufferText(page, from)),
      20_000,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; the terminal shows:\n${await bufferText(page).catch(() => "?")}`);
    });
  };
  const size = (page: Page) => page.evaluate<[number, number]>("[terminal.rows, terminal.cols]");
  const agentConnections = () => metric(agentMetricsPort, "devicestreams_agent_connections_active");

  it("opens with its one-time URL, asks about the unknown host key, runs a command, follows a resize; closing the tab ends the session", async () => {
    assert.match(webOut, /Browser terminal: \S+@edge-1 through DeviceStream e2e-web\/web/);
    assert.equal(await agentConnections(), 0);
    const page = await chromium.newPage({ width: 1000, height: 640 });
    assert.equal(await page.navigate(url), 200);
    assert.equal(
      await page.evaluate("location.href"),
      url.replace(/\?token=.*/, ""),
      "the token leaves the address bar",
    );

    // The host key is unknown: the page shows its fingerprint, the one ssh-keygen shows for the device's key.
    await waitFor("the host key question", () => page.evaluate<boolean>("document.getElementById('host-key').open"));
    const shown = await page.evaluate<string>("document.getElementById('host-key-fingerprint').textContent");
    const real = execFileSync("ssh-keygen", ["-lf", join(sshd.dir, "ssh_host_ed25519_key.pub")], { encoding: "utf8" });
    assert.equal(shown, real.split(" ")[1]);
    assert.equal(readFileSync(knownHosts(), "utf8").trim(), "", "nothing added before the click");
    await page.evaluate("document.getElementById('host-key-accept').click()");
    await waitFor("known_hosts to hold the device's key", () =>
      readFileSync(knownHosts(), "utf8").startsWith("edge-1 ssh-ed25519 "),
    );

    // A command typed into the page, its output read from the page's xterm buffer.
    const hello = await run(page, "echo hello-$RANDOM", /^hello-(\d+)$/m);
    assert.ok(Number(hello[1]) >= 0);
    assert.equal(await agentConnections(), 1, "one tunnelled connection, on the agent");
    const pid = Number((await run(page, "echo shell-pid-$$", /^shell-pid-(\d+)$/m))[1]);
    assert.ok(!gone(pid), "the session's shell runs on the device");

    // The PTY has the page's size, and follows the window when it is resized.
    const [rows, cols] = await size(page);
    assert.ok(rows > 10 && cols > 60, `${rows}x${cols}`);
    assert.equal((await run(page, "echo size-$(stty size)", /^size-(\d+ \d+)$/m))[1], `${rows} ${cols}`);
    // The docs' picture: the terminal as a person sees it.
    const screenshot = await page.screenshot();
    assert.equal(screenshot.subarray(1, 4).toString(), "PNG");
    if (process.env.WEB_TERMINAL_SCREENSHOT) writeFileSync(process.env.WEB_TERMINAL_SCREENSHOT, screenshot);

    await page.resizeWindow(700, 420);
    const [newRows, newCols] = await waitFor("the terminal to refit", async () => {
      const s = await size(page);
      return s[0] < rows && s[1] < cols ? s : undefined;
    });
    assert.equal((await run(page, "echo size2-$(stty size)", /^size2-(\d+ \d+)$/m))[1], `${newRows} ${newCols}`);

    // Closing the tab ends the SSH session: the shell, sshd's session, the tunnelled connection.
    await page.close();
    await waitFor(`the shell (pid ${pid}) to end`, () => gone(pid), 20_000);
    await waitFor("sshd to log the disconnect", () => /Disconnected from user \S+ 127\.0\.0\.1/.test(sshd.logs()));
    await waitFor("the agent's tunnelled connection to close", async () => (await agentConnections()) === 0, 20_000);
    await waitFor("the web command to log the session closed", () => /terminal session closed/.test(webOut));
  });

  it("the same URL again, no token, a wrong token: each refused clearly, while another terminal keeps working", async () => {
    // The browser that opened the URL keeps its cookie: a new tab there opens another terminal.
    const working = await chromium.newPage();
    assert.equal(await working.navigate(url.replace(/\?token=.*/, "")), 200);
    await run(working, "echo before-$((20+1))", /^before-21$/m);
    assert.ok(
      !(await working.evaluate<boolean>("document.getElementById('host-key').open")),
      "the accepted key is known now",
    );

    // Another browser (no cookies): every way in without the unspent token is refused, with the code and what to do.
    const other = await chromium.newPage({ context: await chromium.newContext() });
    const refusals: Array<[string, RegExp]> = [
      [url, /DS_WEB_TOKEN: this one-time URL has already been opened/],
      [url.replace(/\?token=.*/, ""), /DS_WEB_TOKEN: this page opens only with the one-time URL/],
      [url.replace(/token=.*/, "token=not-the-token"), /DS_WEB_TOKEN: the URL's token is not this terminal's/],
    ];
    for (const [target, why] of refusals) {
      assert.equal(await other.navigate(target), 403, target);
      assert.match(await other.evaluate<string>("document.body.innerText"), why);
      assert.equal(await other.evaluate("typeof terminal"), "undefined", "no terminal on a refused page");
    }
    // A page of another origin in the browser that has the cookie: 127.0.0.1 on another port is the
    // same site, so the SameSite cookie goes along; the Origin check is what refuses it.
    const port = new URL(url).port;
    const elsewhere = createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end("<!doctype html><title>another local app</title>");
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
    stopAfterTest({ stop: () => elsewhere.close() });
    const evil = await chromium.newPage();
    await evil.navigate(`http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/`);
    const crossOrigin = await evil.evaluate<string>(`new Promise((resolve) => {
      const ws = new WebSocket("ws://127.0.0.1:${port}/ws?cols=80&rows=24");
      ws.onopen = () => resolve("open");
      ws.onclose = (e) => resolve("closed " + e.code);
    })`);
    assert.equal(crossOrigin, "closed 1006");
    await waitFor("the web command to log the refusal", () =>
      /terminal WebSocket refused code=DS_WEB_FORBIDDEN reason="origin \\"http:\/\/127\.0\.0\.1:\d+\\"/.test(webOut),
    );
    await evil.close();

    // The working terminal never noticed.
    await run(working, "echo after-$((20+2))", /^after-22$/m);
    await working.close();
    await other.close();
  });

  it("Ctrl-C stops the command: open terminals end and the page says so", async () => {
    const page = await chromium.newPage();
    await page.navigate(url.replace(/\?token=.*/, ""));
    const pid = Number((await run(page, "echo shell-pid-$$", /^shell-pid-(\d+)$/m))[1]);
    const exited = new Promise<number | null>((resolve) => web!.once("exit", (code) => resolve(code)));
    web!.kill("SIGINT");
    assert.equal(await exited, 0, webOut);
    await waitFor(`the shell (pid ${pid}) to end`, () => gone(pid), 20_000);
    await waitFor("the page to show the terminal ended", () =>
      page.evaluate<boolean>("document.body.classList.contains('ended')"),
    );
    stopAfterTest({ stop: () => page.close().catch(() => {}) });
  });
});
