import assert from "node:assert/strict";
import { describeForward, parseForwardSpec, parseServiceChoice } from "./forward-spec.ts";

describe("-L forward specs", () => {
  it("reads the old forms: a port, a bind address and a port (the stream's first service)", () => {
    assert.deepEqual(parseForwardSpec("2222"), { host: "127.0.0.1", port: 2222 });
    assert.deepEqual(parseForwardSpec("0.0.0.0:2222"), { host: "0.0.0.0", port: 2222 });
    assert.deepEqual(parseForwardSpec("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
    assert.deepEqual(parseForwardSpec("[::1]:2222"), { host: "::1", port: 2222 });
    assert.deepEqual(parseForwardSpec("localhost:2222"), { host: "localhost", port: 2222 });
  });
  it("reads a service, and a port within the service's range", () => {
    assert.deepEqual(parseForwardSpec("2222:ssh"), { host: "127.0.0.1", port: 2222, choice: { service: "ssh" } });
    assert.deepEqual(parseForwardSpec("127.0.0.1:8080:web"), {
      host: "127.0.0.1",
      port: 8080,
      choice: { service: "web" },
    });
    assert.deepEqual(parseForwardSpec("30005:ftp:30005"), {
      host: "127.0.0.1",
      port: 30005,
      choice: { service: "ftp", port: 30005 },
    });
    assert.deepEqual(parseForwardSpec("[::1]:2121:ftp:21"), {
      host: "::1",
      port: 2121,
      choice: { service: "ftp", port: 21 },
    });
    assert.deepEqual(parseForwardSpec("0.0.0.0:2222:8080"), {
      host: "0.0.0.0",
      port: 2222,
      choice: { service: "8080" },
    });
  });
  it("refuses what it cannot read, showing the forms", () => {
    for (const [spec, why] of [
      ["", /empty part/],
      ["2222:", /empty part/],
      ["70000:ssh", /local port "70000" is not a port/],
      ["2222:SSH", /"SSH" is not a service name/],
      ["2222:ssh:0", /the service's port "0" is not a port/],
      ["2222:ssh:22:1", /too many parts/],
      ["::1:2222", /empty part/],
      ["[::1]2222", /\[brackets\]:port/],
      ["host:port", /local port "port" is not a port/],
    ] as const) {
      assert.throws(
        () => parseForwardSpec(spec),
        (e: Error & { code?: string }) =>
          e.code === "DS_USAGE" && why.test(e.message) && /\[bind:\]port:service\[:port\]/.test(e.message),
        spec,
      );
    }
  });
  it("--service: a name, or a name and a port", () => {
    assert.deepEqual(parseServiceChoice("ssh", "--service"), { service: "ssh" });
    assert.deepEqual(parseServiceChoice("ftp:30005", "--service"), { service: "ftp", port: 30005 });
    for (const bad of ["", "SSH", "ftp:0", "ftp:70000", "a:b:c", "ftp:"]) {
      assert.throws(() => parseServiceChoice(bad, "--service"), /--service ".*" must be a service name/, bad);
    }
  });

  it("reads back as a person would write it", () => {
    assert.equal(describeForward(parseForwardSpec("0:ftp:30005"), 40000), "127.0.0.1:40000 (service ftp, port 30005)");
    assert.equal(describeForward(parseForwardSpec("[::1]:0"), 40000), "[::1]:40000");
  });
});
