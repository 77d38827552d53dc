import assert from "node:assert/strict";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { defaultRelayUpstream, parseRoute, parseRoutesFile, RouteTable } from "./routes.ts";

describe("gateway routes", () => {
  const rule = { domain: "relay.example.com", upstream: defaultRelayUpstream };

  it("routes exact names first, then <stream>.<namespace>.<relay-domain> to the relay Service", () => {
    const table = new RouteTable(new Map([parseRoute("Hub.Example.com.=10.0.0.1:8444")]), rule);
    assert.deepEqual(table.lookup("hub.example.com"), { host: "10.0.0.1", port: 8444 });
    assert.deepEqual(table.lookup("web.team-a.relay.example.com"), {
      host: "web-relay.team-a.svc.cluster.local",
      port: 8443,
    });
  });

  it("routes nothing else: other domains, extra or missing labels, names that are not labels", () => {
    const table = new RouteTable(new Map(), rule);
    for (const name of [
      "web.relay.example.com",
      "a.web.team-a.relay.example.com",
      "relay.example.com",
      "web.team-a.relay.example.org",
      "web.team-a.xrelay.example.com",
      "1web.team-a.relay.example.com", // a stream name starts with a letter
      "web-.team-a.relay.example.com",
      "web.team_a.relay.example.com",
      `${"a".repeat(58)}.ns.relay.example.com`,
    ]) {
      assert.equal(table.lookup(name), undefined, name);
    }
    assert.equal(new RouteTable(new Map()).lookup("web.team-a.relay.example.com"), undefined, "no rule, no relays");
  });

  it("fills a custom upstream template", () => {
    const table = new RouteTable(new Map(), { domain: "r.test", upstream: "{namespace}-{stream}.lb:9000" });
    assert.deepEqual(table.lookup("s.n.r.test"), { host: "n-s.lb", port: 9000 });
    assert.throws(() => new RouteTable(new Map(), { domain: "r.test", upstream: "{stream}" }), /relay-upstream/);
  });

  it("reads a routes file and refuses a bad line naming it", () => {
    const routes = parseRoutesFile("# hub\nhub.example.com = 10.0.0.1:8444\n\nother.example.com=[::1]:1 # v6\n", "f");
    assert.deepEqual([...routes.keys()], ["hub.example.com", "other.example.com"]);
    assert.deepEqual(routes.get("other.example.com"), { host: "::1", port: 1 });
    const bad = (text: string, pattern: RegExp) =>
      assert.throws(
        () => parseRoutesFile(text, "routes.txt"),
        (e: unknown) =>
          e instanceof DeviceStreamsError && e.code === "DS_GATEWAY_ROUTES_INVALID" && pattern.test(e.message),
      );
    bad("a.example.com=10.0.0.1:1\nnonsense\n", /routes\.txt:2: "nonsense" is not a route/);
    bad("a.example.com=10.0.0.1\n", /routes\.txt:1 \(a\.example\.com\): "10\.0\.0\.1" is not an address/);
    bad("a.example.com=h:1\nA.example.com=h:2\n", /:2: a\.example\.com is routed twice/);
  });
});
