import assert from "node:assert/strict";
import { PageAccess, readCookie } from "./page-access.ts";

describe("browser terminal page access", () => {
  const cookieOf = (setCookie: string) => setCookie.split(";")[0]!;

  it("takes the one-time token once, and the cookie after", () => {
    const a = new PageAccess("127.0.0.1", 8123);
    assert.match(a.token, /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
    assert.deepEqual(a.redeem(null), { refused: "missing" });
    assert.deepEqual(a.redeem(""), { refused: "missing" });
    assert.deepEqual(a.redeem(`${a.token}x`), { refused: "wrong" });
    assert.ok(!a.hasSession(undefined), "no session before the token is used");
    const first = a.redeem(a.token);
    assert.ok("cookie" in first);
    assert.match(first.cookie, /^devicestreams_web_8123=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
    assert.deepEqual(a.redeem(a.token), { refused: "used" }, "the same URL a second time");
    assert.deepEqual(a.redeem("wrong"), { refused: "wrong" }, "a wrong token still says wrong, not used");
    assert.ok(a.hasSession(cookieOf(first.cookie)));
    assert.ok(a.hasSession(`other=1; ${cookieOf(first.cookie)}; more=2`));
    assert.ok(!a.hasSession(`${cookieOf(first.cookie)}x`));
    assert.ok(!a.hasSession(`devicestreams_web_8124=${cookieOf(first.cookie).split("=")[1]}`), "another port's name");
    assert.ok(!a.hasSession(`devicestreams_web_8123=${a.token}`), "the token is no cookie");
  });

  it("two terminals have different tokens and cookie names", () => {
    const a = new PageAccess("127.0.0.1", 8123);
    const b = new PageAccess("127.0.0.1", 8124);
    assert.notEqual(a.token, b.token);
    assert.notEqual(a.cookieName, b.cookieName);
    assert.deepEqual(b.redeem(a.token), { refused: "wrong" });
  });

  it("answers only to its own Host and Origin (no DNS rebinding, no other site's page)", () => {
    const a = new PageAccess("127.0.0.1", 8123);
    assert.ok(a.hostAllowed("127.0.0.1:8123"));
    assert.ok(a.hostAllowed("localhost:8123"));
    assert.ok(a.hostAllowed("LOCALHOST:8123"));
    assert.ok(!a.hostAllowed("127.0.0.1:8124"));
    assert.ok(!a.hostAllowed("attacker.example:8123"));
    assert.ok(!a.hostAllowed(undefined));
    assert.ok(a.originAllowed("http://127.0.0.1:8123", "127.0.0.1:8123"));
    assert.ok(a.originAllowed("http://localhost:8123", "localhost:8123"));
    assert.ok(!a.originAllowed("http://localhost:8123", "127.0.0.1:8123"), "another origin than the page's host");
    assert.ok(!a.originAllowed("https://127.0.0.1:8123", "127.0.0.1:8123"));
    assert.ok(!a.originAllowed("http://evil.example", "127.0.0.1:8123"));
    assert.ok(!a.originAllowed("null", "127.0.0.1:8123"));
    assert.ok(!a.originAllowed(undefined, "127.0.0.1:8123"));
    const v6 = new PageAccess("::1", 9000);
    assert.ok(v6.hostAllowed("[::1]:9000"));
    assert.ok(v6.hostAllowed("localhost:9000"));
    assert.ok(!v6.hostAllowed("::1:9000"));
  });

  it("reads one cookie from a Cookie header", () => {
    assert.equal(readCookie("a=1; b=2", "b"), "2");
    assert.equal(readCookie("a=1;b=2=3", "b"), "2=3");
    assert.equal(readCookie("ab=1", "b"), undefined);
    assert.equal(readCookie(undefined, "b"), undefined);
    assert.equal(readCookie("b=1; b=2", "b"), "1");
  });
});
