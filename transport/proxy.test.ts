// Proxy settings as users give them (flag, environment, credentials file), which hosts bypass it,
// the channel options grpc-js gets, and each way a CONNECT can be refused, named.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DeviceStreamsError } from "../runtime/errors.ts";
import { bypassesProxy, checkProxy, proxiedChannel, proxySettings } from "./proxy.ts";

const dir = mkdtempSync(join(tmpdir(), "ds-proxy-test-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe("transport: HTTP proxy", () => {
  it("takes --proxy before HTTPS_PROXY, and reads NO_PROXY", () => {
    const env = { HTTPS_PROXY: "http://env-proxy:3128", NO_PROXY: "localhost, .corp.example ,10.0.0.1" };
    assert.equal(proxySettings(undefined, undefined, {}), undefined);
    const fromEnv = proxySettings(undefined, undefined, env)!;
    assert.deepEqual([fromEnv.host, fromEnv.port, fromEnv.source], ["env-proxy", 3128, "HTTPS_PROXY"]);
    assert.deepEqual(fromEnv.noProxy, ["localhost", ".corp.example", "10.0.0.1"]);
    const fromFlag = proxySettings("proxy.example:8080", undefined, env)!;
    assert.deepEqual([fromFlag.url, fromFlag.source], ["http://proxy.example:8080", "--proxy"]);
    assert.equal(proxySettings(undefined, undefined, { https_proxy: "http://lower:80" })!.host, "lower");
  });

  it("reads credentials from the file, or the URL, and never puts them in the URL it reports", () => {
    const p = proxySettings("http://u:p%40ss@proxy:3128", undefined, {})!;
    assert.equal(p.credentials, "u:p@ss");
    assert.equal(p.url, "http://proxy:3128");
    assert.equal(
      proxySettings("http://proxy:3128", file("auth", "factory:s3cret\n"), {})!.credentials,
      "factory:s3cret",
    );
  });

  it("refuses what it cannot use, naming the flag", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return `${(err as DeviceStreamsError).code} ${(err as Error).message}`;
      }
      return "accepted";
    };
    assert.match(
      code(() => proxySettings("https://proxy:443", undefined, {})),
      /DS_CONFIG --proxy: only an http:\/\//,
    );
    assert.match(
      code(() => proxySettings("http://proxy:3128/path", undefined, {})),
      /DS_CONFIG/,
    );
    assert.match(
      code(() => proxySettings("http://[bad", undefined, {})),
      /DS_CONFIG --proxy "http:\/\/\[bad"/,
    );
    assert.match(
      code(() => proxySettings("p:1", file("bad", "no colon"), {})),
      /user:password/,
    );
    assert.match(
      code(() => proxySettings("p:1", join(dir, "missing"), {})),
      /cannot read --proxy-auth-file/,
    );
    assert.match(
      code(() => proxySettings(undefined, undefined, { HTTPS_PROXY: "socks5://x:1" })),
      /HTTPS_PROXY/,
    );
  });

  it("bypasses exact hosts, domain suffixes and *", () => {
    const list = ["localhost", ".corp.example", "10.0.0.1", "hub.example:443"];
    assert.ok(bypassesProxy("LOCALHOST", list));
    assert.ok(bypassesProxy("relay.corp.example", list));
    assert.ok(bypassesProxy("corp.example", list));
    assert.ok(bypassesProxy("hub.example", list));
    assert.ok(!bypassesProxy("evilcorp.example", list));
    assert.ok(!bypassesProxy("10.0.0.10", list));
    assert.ok(bypassesProxy("anything", ["*"]));
  });

  it("dials the proxy and keeps the target's TLS name", () => {
    const proxy = proxySettings("http://proxy:3128", file("auth2", "a:b"), { NO_PROXY: ".svc" })!;
    const via = proxiedChannel("relay.example:8443", proxy, undefined);
    assert.equal(via.address, "proxy:3128");
    assert.equal(via.options["grpc.http_connect_target"], "dns:relay.example:8443");
    assert.equal(via.options["grpc.http_connect_creds"], "a:b");
    assert.equal(via.options["grpc.ssl_target_name_override"], "relay.example");
    assert.equal(
      proxiedChannel("10.1.2.3:8443", proxy, "s.ns.relay").options["grpc.ssl_target_name_override"],
      "s.ns.relay",
    );
    const direct = proxiedChannel("hub.ns.svc:8443", proxy, undefined);
    assert.deepEqual(direct, { address: "hub.ns.svc:8443", options: { "grpc.enable_http_proxy": 0 } });
  });

  describe("checkProxy against a CONNECT proxy", () => {
    let server: Server;
    let port = 0;
    before(async () => {
      server = createServer();
      server.on("connect", (req, socket) => {
        const auth = req.headers["proxy-authorization"];
        const answer =
          auth !== `Basic ${Buffer.from("u:right").toString("base64")}`
            ? "407 Proxy Authentication Required"
            : req.url === "forbidden:443"
              ? "403 Filtered"
              : "200 Connection established";
        socket.end(`HTTP/1.1 ${answer}\r\n\r\n`);
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as { port: number }).port;
    });
    after(() => server.close());

    const proxy = (creds?: string) => ({
      url: `http://127.0.0.1:${port}`,
      host: "127.0.0.1",
      port,
      credentials: creds,
      noProxy: [],
      source: "--proxy",
    });

    it("passes with the right credentials", async () => {
      await checkProxy(proxy("u:right"), "relay:8443");
    });

    it("names refused credentials, a refused target and a proxy that is down", async () => {
      const code = (p: Promise<void>) =>
        p.then(
          () => "ok",
          (e: DeviceStreamsError) => `${e.code} ${e.message}`,
        );
      assert.match(
        await code(checkProxy(proxy("u:wrong"), "relay:8443")),
        /^DS_PROXY_AUTH .*refused the credentials given \(407/,
      );
      assert.match(await code(checkProxy(proxy(), "relay:8443")), /^DS_PROXY_AUTH .*without credentials/);
      assert.match(
        await code(checkProxy(proxy("u:right"), "forbidden:443")),
        /^DS_PROXY_REFUSED .*403 Filtered to CONNECT forbidden:443/,
      );
      const down = { ...proxy(), port: 1, url: "http://127.0.0.1:1" };
      assert.match(
        await code(checkProxy(down, "relay:8443")),
        /^DS_PROXY_UNREACHABLE cannot reach the HTTP proxy http:\/\/127\.0\.0\.1:1/,
      );
    });
  });
});
