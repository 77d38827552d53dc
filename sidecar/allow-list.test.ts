import assert from "node:assert/strict";
import { AllowList } from "./allow-list.ts";

describe("allow-list", () => {
  it("maps service names to targets and knows nothing else", () => {
    const list = AllowList.from(["ssh=127.0.0.1:22", "web=localhost:8080"], undefined);
    assert.deepEqual(list.lookup("ssh"), { host: "127.0.0.1", port: 22 });
    assert.deepEqual(list.services, ["ssh", "web"]);
    assert.equal(list.lookup("rdp"), undefined);
    assert.equal(list.lookup("__proto__"), undefined);
  });
  it("refuses malformed entries with a message that shows the right form", () => {
    assert.throws(() => AllowList.from(["ssh"], undefined), /ssh=127\.0\.0\.1:22/);
    assert.throws(() => AllowList.from(["SSH=127.0.0.1:22"], undefined), /lowercase/);
    assert.throws(() => AllowList.from(["ssh=127.0.0.1"], undefined), /host:port/);
    assert.throws(() => AllowList.from(["ssh=127.0.0.1:0"], undefined), /port 0/);
  });
});
