import assert from "node:assert/strict";
import { checkHello, maxAdvertisedServices } from "./hello.ts";

describe("hub: the agent's hello", () => {
  it("accepts up to the Device's limit of DNS-1123 service names, sorted and without repeats", () => {
    const services = Array.from({ length: maxAdvertisedServices }, (_, i) => `svc-${i}`);
    const ok = checkHello({ agentVersion: "1.0", services });
    assert.ok(ok.ok);
    assert.equal(ok.services.length, maxAdvertisedServices);
    assert.deepEqual(checkHello({ services: ["vnc", "ssh", "vnc"] }), {
      ok: true,
      agentVersion: "",
      services: ["ssh", "vnc"],
    });
  });

  it("refuses too many services, naming the count and the limit", () => {
    const services = Array.from({ length: maxAdvertisedServices + 1 }, (_, i) => `svc-${i}`);
    const r = checkHello({ services });
    assert.ok(!r.ok);
    assert.match(r.message, /advertises 257 services; at most 256/);
  });

  it("refuses a name that is too long or not a DNS-1123 label, quoted and cut short", () => {
    const long = checkHello({ services: ["ssh", "a".repeat(100_000)] });
    assert.ok(!long.ok);
    assert.match(long.message, /"a{80}…", which is longer than 63 characters/);
    assert.ok(long.message.length < 300);
    const bad = checkHello({ services: ["Bad_Name\n"] });
    assert.ok(!bad.ok);
    assert.match(bad.message, /"Bad_Name\\n", which is not a DNS-1123 label/);
  });
});
