// The browser terminal: xterm.js in the window and a WebSocket to the server that
// `kubectl devicestream web` runs on 127.0.0.1. Binary messages are terminal bytes, both ways;
// text messages are JSON control messages (client/web/messages.ts says which).
import { FitAddon } from "/assets/addon-fit.mjs";
import { Terminal } from "/assets/xterm.mjs";

/** As client/web/messages.ts: input goes in chunks the server accepts. */
const inputChunkBytes = 16 * 1024;

// The URL's one-time token is spent: keep it out of the address bar and the history.
if (location.search) history.replaceState(null, "", "/");

const byId = (id) => document.getElementById(id);
const setStatus = (text) => {
  byId("status").textContent = text;
};
let failed = false;
const showError = (text) => {
  failed = true;
  const box = byId("error");
  box.textContent = text;
  box.hidden = false;
  setStatus("failed");
};

const term = new Terminal({
  cursorBlink: true,
  scrollback: 10000,
  fontFamily: "'DejaVu Sans Mono', ui-monospace, monospace",
  fontSize: 14,
  theme: { background: "#1e1e1e" },
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(byId("terminal"));
fit.fit();
term.focus();
// The terminal's buffer, readable from the console (and by the end-to-end test).
window.terminal = term;

const ws = new WebSocket(`ws://${location.host}/ws?cols=${term.cols}&rows=${term.rows}`);
ws.binaryType = "arraybuffer";
const control = (message) => {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
};
const sendInput = (bytes) => {
  if (ws.readyState !== WebSocket.OPEN) return;
  for (let i = 0; i < bytes.length; i += inputChunkBytes) ws.send(bytes.subarray(i, i + inputChunkBytes));
};
const encoder = new TextEncoder();
term.onData((text) => sendInput(encoder.encode(text)));
term.onBinary((text) => sendInput(Uint8Array.from(text, (c) => c.charCodeAt(0))));
term.onResize(({ cols, rows }) => control({ type: "resize", cols, rows }));
let fitting = false;
window.addEventListener("resize", () => {
  if (fitting) return;
  fitting = true;
  requestAnimationFrame(() => {
    fitting = false;
    fit.fit();
  });
});

const askHostKey = (m) => {
  const dialog = byId("host-key");
  byId("host-key-host").textContent = m.host;
  byId("host-key-file").textContent = m.knownHosts;
  byId("host-key-type").textContent = m.keyType;
  byId("host-key-fingerprint").textContent = m.fingerprint;
  setStatus(`unknown host key ${m.fingerprint}: accept or reject`);
  dialog.addEventListener(
    "close",
    () => {
      control({ type: "host-key", accept: dialog.returnValue === "accept" });
      term.focus();
    },
    { once: true },
  );
  dialog.showModal();
};

let exit = "";
ws.onopen = () => setStatus("connecting…");
ws.onmessage = (event) => {
  if (typeof event.data !== "string") {
    term.write(new Uint8Array(event.data));
    return;
  }
  const m = JSON.parse(event.data);
  switch (m.type) {
    case "hello":
      document.title = `${m.target} — DeviceStream ${m.stream}`;
      byId("title").textContent = `${m.target} · DeviceStream ${m.stream}`;
      break;
    case "status":
      setStatus(m.text);
      break;
    case "host-key":
      askHostKey(m);
      break;
    case "error":
      showError(`${m.code}: ${m.message}`);
      break;
    case "exit":
      exit = m.signal ? ` (signal ${m.signal})` : m.status !== undefined ? ` (exit status ${m.status})` : "";
      break;
  }
};
ws.onclose = (event) => {
  term.options.disableStdin = true;
  document.body.classList.add("ended");
  if (failed) return;
  if (event.code === 1000) setStatus(`session ended${exit}`);
  else if (event.code === 1001) setStatus("the terminal's server stopped (`kubectl devicestream web` ended)");
  else
    showError(
      "the terminal's server refused or dropped the connection: is `kubectl devicestream web` still running? Its output says why.",
    );
};
