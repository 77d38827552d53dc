// A real headless Chromium (Debian's package, `.ci/run` installs it) driven over the Chrome
// DevTools Protocol with `ws` directly: one browser process, pages as targets attached in flat
// mode, and browser contexts for a second, cookie-less browser. Missing Chromium fails the test
// with how to install it; nothing is skipped.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { forgetOnExit, type ManagedProcess, removeOnExit, startProcess } from "./child-process.ts";
import { StopWaiting, waitFor } from "./wait.ts";

const candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function chromiumPath(): string {
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `no Chromium at ${candidates.join(", ")}: install Debian's package (apt-get install -y chromium), as .ci/run does`,
    );
  }
  return found;
}

type Params = Record<string, unknown>;
type Handler = (params: Params) => void;

/** A CDP connection: commands by id, events by method (and session, for a page's). */
class Cdp {
  private next = 1;
  private readonly pending = new Map<number, { resolve(v: Params): void; reject(e: Error): void; method: string }>();
  private readonly handlers = new Set<{ method: string; sessionId?: string; fn: Handler }>();

  private readonly ws: WebSocket;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data: Buffer) => {
      const m = JSON.parse(data.toString()) as {
        id?: number;
        result?: Params;
        error?: { message: string };
        method?: string;
        params?: Params;
        sessionId?: string;
      };
      if (m.id !== undefined) {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) p?.reject(new Error(`${p.method}: ${m.error.message}`));
        else p?.resolve(m.result ?? {});
        return;
      }
      for (const h of this.handlers) {
        if (h.method === m.method && h.sessionId === m.sessionId) h.fn(m.params ?? {});
      }
    });
    ws.on("close", () => {
      for (const p of this.pending.values()) p.reject(new Error(`${p.method}: the browser's connection closed`));
      this.pending.clear();
    });
  }

  send<T = Params>(method: string, params: Params = {}, sessionId?: string): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: Params) => void, reject, method });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  on(method: string, fn: Handler, sessionId?: string): () => void {
    const h = { method, sessionId, fn };
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }

  close(): void {
    this.ws.close();
  }
}

export class Page {
  private readonly cdp: Cdp;
  readonly targetId: string;
  readonly sessionId: string;

  constructor(cdp: Cdp, targetId: string, sessionId: string) {
    this.cdp = cdp;
    this.targetId = targetId;
    this.sessionId = sessionId;
  }

  send<T = Params>(method: string, params: Params = {}): Promise<T> {
    return this.cdp.send<T>(method, params, this.sessionId);
  }

  on(method: string, fn: Handler): () => void {
    return this.cdp.on(method, fn, this.sessionId);
  }

  /** The value of a JavaScript expression in the page (awaited if a promise). */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value?: T }; exceptionDetails?: { text: string; exception?: Params } }>(
      "Runtime.evaluate",
      { expression, returnByValue: true, awaitPromise: true },
    );
    if (r.exceptionDetails) {
      const detail = (r.exceptionDetails.exception?.description as string | undefined) ?? r.exceptionDetails.text;
      throw new Error(`in the page: ${detail}`);
    }
    return r.result.value as T;
  }

  /** Navigates and waits for the load event; the main document's HTTP status. */
  async navigate(url: string): Promise<number> {
    let status = 0;
    const offResponse = this.on("Network.responseReceived", (p) => {
      const response = p.response as { url: string; status: number };
      if (p.type === "Document") status = response.status;
    });
    const loaded = new Promise<void>((resolve) => {
      const off = this.on("Page.loadEventFired", () => {
        off();
        resolve();
      });
    });
    const r = await this.send<{ errorText?: string }>("Page.navigate", { url });
    if (r.errorText) throw new Error(`navigating to ${url}: ${r.errorText}`);
    await loaded;
    offResponse();
    return status;
  }

  /** Text typed as a person would (into the focused element of this tab, brought to the front), then Enter. */
  async typeLine(text: string): Promise<void> {
    await this.send("Page.bringToFront");
    await this.send("Input.insertText", { text });
    const enter = { key: "Enter", code: "Enter", windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13 };
    await this.send("Input.dispatchKeyEvent", { type: "keyDown", text: "\r", ...enter });
    await this.send("Input.dispatchKeyEvent", { type: "keyUp", ...enter });
  }

  /** The browser window's size, as a person would drag it. */
  async resizeWindow(width: number, height: number): Promise<void> {
    const { windowId } = await this.cdp.send<{ windowId: number }>("Browser.getWindowForTarget", {
      targetId: this.targetId,
    });
    await this.cdp.send("Browser.setWindowBounds", { windowId, bounds: { width, height, windowState: "normal" } });
  }

  async screenshot(): Promise<Buffer> {
    const { data } = await this.send<{ data: string }>("Page.captureScreenshot", { format: "png" });
    return Buffer.from(data, "base64");
  }

  /** Closes the tab, as a person would. */
  async close(): Promise<void> {
    await this.cdp.send("Target.closeTarget", { targetId: this.targetId });
  }
}

export interface Chromium {
  /** A new tab (in `context`, a separate cookie jar, when given) at about:blank, with Page, Runtime and Network on. */
  newPage(o?: { context?: string; width?: number; height?: number }): Promise<Page>;
  /** A browser context of its own: as a second browser, with no cookies. */
  newContext(): Promise<string>;
  /** The browser's output so far. */
  logs(): string;
  stop(): Promise<void>;
}

export async function startChromium(): Promise<Chromium> {
  const path = chromiumPath();
  const dir = mkdtempSync(join(tmpdir(), "ds-chromium-"));
  removeOnExit(dir);
  const log = join(dir, "chromium.log");
  const proc: ManagedProcess = startProcess(
    "chromium",
    path,
    [
      "--headless",
      // Tests run as root in CI, where Chromium's sandbox cannot start.
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-extensions",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--password-store=basic",
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      `--user-data-dir=${join(dir, "profile")}`,
      "about:blank",
    ],
    log,
  );
  const endpoint = await waitFor(
    "Chromium's DevTools endpoint",
    () => {
      if (!proc.running()) throw new StopWaiting(`chromium exited:\n${proc.tail(30)}`);
      return /DevTools listening on (ws:\/\/\S+)/.exec(readFileSync(log, "utf8"))?.[1];
    },
    30_000,
  ).catch((err: Error) => {
    void proc.stop(2_000);
    throw new Error(`${err.message}\n${proc.tail(30)}`);
  });
  const ws = new WebSocket(endpoint, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const cdp = new Cdp(ws);
  return {
    async newPage(o = {}) {
      const { targetId } = await cdp.send<{ targetId: string }>("Target.createTarget", {
        url: "about:blank",
        // A window of its own, which Browser.setWindowBounds can resize.
        newWindow: true,
        width: o.width ?? 1000,
        height: o.height ?? 640,
        ...(o.context ? { browserContextId: o.context } : {}),
      });
      const { sessionId } = await cdp.send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
      const page = new Page(cdp, targetId, sessionId);
      await Promise.all([page.send("Page.enable"), page.send("Runtime.enable"), page.send("Network.enable")]);
      return page;
    },
    async newContext() {
      const { browserContextId } = await cdp.send<{ browserContextId: string }>("Target.createBrowserContext");
      return browserContextId;
    },
    // Without the system bus (containers, CI) Chromium logs a dbus error a second: not ours.
    logs: () =>
      proc
        .tail(400)
        .split("\n")
        .filter((l) => !/dbus/.test(l))
        .join("\n"),
    async stop() {
      cdp.close();
      await proc.stop(5_000);
      rmSync(dir, { recursive: true, force: true });
      forgetOnExit(dir);
    },
  };
}
