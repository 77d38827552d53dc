import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { AllowList } from "./allow-list.ts";
import { parsePortSet } from "./port-set.ts";

describe("allow-list", () => {
  it("maps service names to targets and knows nothing else", () => {
    const list = AllowList.from(["ssh=127.0.0.1:22", "web=localhost:8080"], undefined);
    assert.deepEqual(list.resolve("ssh", 0), { ok: true, target: { host: "127.0.0.1", port: 22 } });
    assert.deepEqual(list.services, ["ssh", "web"]);
    assert.equal(list.lookup("rdp"), undefined);
    assert.equal(list.lookup("__proto__"), undefined);
    const missing = list.resolve("rdp", 0);
    assert.ok(!missing.ok && missing.error.code === "DS_SERVICE_NOT_ALLOWED");
    assert.match(!missing.ok ? missing.error.message : "", /it has: ssh, web/);
  });
  it("refuses malformed entries with a message that shows the right form", () => {
    assert.throws(() => AllowList.from(["ssh"], undefined), /ssh=127\.0\.0\.1:22/);
    assert.throws(() => AllowList.from(["SSH=127.0.0.1:22"], undefined), /lowercase/);
    assert.throws(() => AllowList.from(["ssh=127.0.0.1"], undefined), /host:port/);
    assert.throws(() => AllowList.from(["ssh=127.0.0.1:0"], undefined), /port 0/);
    assert.throws(() => AllowList.from(["ftp=127.0.0.1:30100-30000"], undefined), /ends before it starts/);
    assert.throws(() => AllowList.from(["ftp=127.0.0.1:30000-70000"], undefined), /not a port or range/);
    assert.throws(() => AllowList.from(["ftp=127.0.0.1:1-2-3"], undefined), /first-last/);
    assert.throws(() => AllowList.from(["ftp=127.0.0.1:21,"], undefined), /not a port or range/);
    assert.throws(() => AllowList.from(["ftp=127.0.0.1:-5"], undefined), /not a port or range/);
  });
  it("a service of one port ignores the port asked for (a browser asks for 80)", () => {
    const list = AllowList.from(["web=127.0.0.1:8080"], undefined);
    for (const asked of [0, 80, 443, 8080]) {
      assert.deepEqual(list.resolve("web", asked), { ok: true, target: { host: "127.0.0.1", port: 8080 } });
    }
  });
  it("a range service dials the port asked for when it is in the range, and refuses any other", () => {
    const list = AllowList.from(["ftp-data=127.0.0.1:30000-30100"], undefined);
    assert.deepEqual(list.resolve("ftp-data", 30000), { ok: true, target: { host: "127.0.0.1", port: 30000 } });
    assert.deepEqual(list.resolve("ftp-data", 30100), { ok: true, target: { host: "127.0.0.1", port: 30100 } });
    assert.deepEqual(list.resolve("ftp-data", 0), { ok: true, target: { host: "127.0.0.1", port: 30000 } });
    for (const asked of [29999, 30101, 22, 65535]) {
      const r = list.resolve("ftp-data", asked);
      assert.ok(!r.ok, `port ${asked} must be refused`);
      assert.equal(r.error.code, "DS_PORT_OUT_OF_RANGE");
      assert.match(r.error.message, new RegExp(`ports 30000-30100 on this device, not ${asked}`));
    }
  });
  it("one service may have a port and ranges: --allow splits on commas, the parts are joined again", () => {
    const list = AllowList.from(["ftp=127.0.0.1:21", "30000-30010", "30020", "ssh=[::1]:22"], undefined);
    assert.deepEqual(list.services, ["ftp", "ssh"]);
    assert.deepEqual(list.lookup("ftp")?.ports, [
      { first: 21, last: 21 },
      { first: 30000, last: 30010 },
      { first: 30020, last: 30020 },
    ]);
    assert.deepEqual(list.resolve("ftp", 0), { ok: true, target: { host: "127.0.0.1", port: 21 } });
    assert.deepEqual(list.resolve("ftp", 30005), { ok: true, target: { host: "127.0.0.1", port: 30005 } });
    assert.deepEqual(list.resolve("ftp", 30020), { ok: true, target: { host: "127.0.0.1", port: 30020 } });
    assert.equal(list.resolve("ftp", 30015).ok, false);
    assert.equal(list.resolve("ftp", 22).ok, false);
    assert.deepEqual(list.resolve("ssh", 0), { ok: true, target: { host: "::1", port: 22 } });
  });
  it("reads examples/rdp's allow-list file", () => {
    const list = AllowList.from([], fileURLToPath(new URL("../examples/rdp/agent-allow.json", import.meta.url)));
    assert.deepEqual(list.services, ["rdp", "ssh"]);
    assert.deepEqual(list.resolve("rdp", 0), { ok: true, target: { host: "127.0.0.1", port: 3389 } });
  });

  it("caps the number of ports and ranges of one service", () => {
    const many = Array.from({ length: 17 }, (_, i) => String(1000 + i)).join(",");
    assert.throws(() => parsePortSet(many), /at most 16/);
    assert.equal(parsePortSet(many.split(",").slice(0, 16).join(",")).length, 16);
  });
});
