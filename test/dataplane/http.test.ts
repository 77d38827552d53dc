// A real HTTP server on the device side and real curl on the operator side, through relay and
// agent: a small GET, a 256 MiB streamed response hashed by server and client, a 32 MiB upload
// hashed by the server, and keep-alive (several requests on one tunnelled connection).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandLine, runCommand } from "../helpers/command.ts";
import { type DataPlane, startDataPlane } from "../helpers/dataplane.ts";
import { type HttpTarget, httpTarget, seededSha256 } from "../helpers/http-target.ts";
import { sha256 } from "../helpers/tcp-targets.ts";

describe("data plane: HTTP through relay and agent, with curl", function () {
  this.timeout(90_000);
  let target: HttpTarget;
  let plane: DataPlane;
  let dir: string;
  let curlLog = "";

  before(async () => {
    target = await httpTarget();
    plane = await startDataPlane({ service: "web", allow: [`web=${target.address}`] });
    dir = mkdtempSync(join(tmpdir(), "ds-http-"));
  });
  after(async () => {
    await plane?.stop();
    await target?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    curlLog = "";
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") {
      console.error(plane.logs().slice(-20_000));
      console.error(`----- http target -----\n${JSON.stringify(target.served.slice(-20))}`);
      if (curlLog) console.error(`----- curl -----\n${curlLog.slice(-10_000)}`);
    }
  });

  /** The tunnel's local port in place of the target's. */
  const viaTunnel = (path: string) => `http://127.0.0.1:${plane.client.port}${path}`;

  const curl = async (args: string[], o: Parameters<typeof runCommand>[2] = {}) => {
    // --noproxy: a CI machine's http_proxy must not take the request elsewhere.
    const all = ["--silent", "--show-error", "--http1.1", "--noproxy", "*", "--max-time", "60", ...args];
    curlLog += `$ ${commandLine("curl", all)}\n`;
    const r = await runCommand("curl", all, { timeoutMs: 70_000, ...o });
    curlLog += r.stderr;
    return r;
  };

  it("answers a small GET with the server's body, and an unknown path with 404", async () => {
    const name = randomBytes(8).toString("hex");
    const r = await curl(["--fail", viaTunnel(`/hello?name=${name}`)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello ${name}\n`);
    const served = await target.waitServed(`/hello?name=${name}`);
    assert.equal(served.method, "GET");

    const missing = await curl(["--output", "/dev/null", "--write-out", "%{http_code}", viaTunnel("/missing")]);
    assert.equal(missing.code, 0, missing.stderr);
    assert.equal(missing.stdout, "404");
  });

  it("streams a 256 MiB response that hashes the same on both sides", async () => {
    const bytes = 256 * 1024 * 1024;
    const seed = randomBytes(8).toString("hex");
    const path = `/stream?bytes=${bytes}&seed=${seed}`;
    const r = await curl(["--fail", viaTunnel(path)]);
    assert.equal(r.code, 0, r.stderr);
    const served = await target.waitServed(path);
    assert.equal(served.bytes, bytes);
    assert.equal(r.stdoutBytes, bytes, "curl received a different length than the server sent");
    assert.equal(r.stdoutSha256, served.sha256, "curl received different bytes than the server sent");
    // Both are what the seed makes, recomputed here (not, say, an empty or repeated body).
    assert.equal(served.sha256, seededSha256(seed, bytes));
  });

  it("uploads 32 MiB with POST and the server hashes what it received", async () => {
    const payload = randomBytes(32 * 1024 * 1024);
    const file = join(dir, "upload.bin");
    writeFileSync(file, payload);
    const r = await curl([
      "--fail",
      "--data-binary",
      `@${file}`,
      "--header",
      "content-type: application/octet-stream",
      viaTunnel("/upload"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const answer = JSON.parse(r.stdout) as { bytes: number; sha256: string };
    assert.deepEqual(answer, { bytes: payload.length, sha256: sha256(payload) });
  });

  it("keeps one connection alive for several requests", async () => {
    const names = Array.from({ length: 5 }, (_, i) => `${i}-${randomBytes(4).toString("hex")}`);
    // One curl, several URLs: curl reuses the connection; %{num_connects} says how many it opened.
    const r = await curl([
      "--fail",
      "--write-out",
      "[%{num_connects}]\n",
      ...names.map((n) => viaTunnel(`/hello?name=${n}`)),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, names.map((n, i) => `hello ${n}\n[${i === 0 ? 1 : 0}]\n`).join(""));
    const served = await Promise.all(names.map((n) => target.waitServed(`/hello?name=${n}`)));
    const connections = new Set(served.map((s) => s.connection));
    assert.equal(connections.size, 1, `the server saw the requests on connections ${[...connections].join(", ")}`);
  });
});
