import assert from "node:assert/strict";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { checkNamespace, checkObjectName, dns1123LabelError, dns1123SubdomainError, parseObjectKey } from "./names.ts";

const invalidName = (pattern: RegExp) => (err: unknown) =>
  err instanceof DeviceStreamsError && err.code === "DS_INVALID_NAME" && pattern.test(err.message);

describe("Kubernetes names", () => {
  it("accepts what Kubernetes accepts: DNS-1123 labels for namespaces, subdomains for names", () => {
    for (const ok of ["a", "0", "factory-7", "a".repeat(63)]) assert.equal(dns1123LabelError(ok), undefined, ok);
    for (const ok of ["pump-3", "pump.3", "a.b-c.d", `${"a".repeat(63)}.${"b".repeat(189)}`]) {
      assert.equal(dns1123SubdomainError(ok), undefined, ok);
    }
    assert.equal(checkNamespace("factory-7"), "factory-7");
    assert.equal(checkObjectName("pump.3"), "pump.3");
  });

  it("refuses what Kubernetes refuses, lengths included", () => {
    const badLabels = ["", "-a", "a-", "A", "a.b", "a_b", "a/b", "..", "a".repeat(64), "ä", "a\n", " a"];
    for (const bad of badLabels) assert.notEqual(dns1123LabelError(bad), undefined, JSON.stringify(bad));
    const badNames = ["", ".", "..", ".a", "a.", "a..b", "-a", "A", "a/b", "a?b", "a#b", "a%2e", "a".repeat(254)];
    for (const bad of badNames) assert.notEqual(dns1123SubdomainError(bad), undefined, JSON.stringify(bad));
    assert.match(dns1123LabelError("a".repeat(64))!, /longer than 63/);
    assert.match(dns1123SubdomainError("a".repeat(254))!, /longer than 253/);
  });

  it("refuses the path-traversal payload as a namespace and a name, quoting it safely", () => {
    const payload = "../../../../api/v1/pods?watch=true#";
    assert.throws(() => checkNamespace(payload), invalidName(/^namespace "\.\.\/\.\.\/.*" is not a DNS-1123 label/));
    assert.throws(() => checkObjectName(payload, "device name"), invalidName(/^device name ".*" is not a DNS-1123/));
    assert.throws(() => checkNamespace(""), invalidName(/^namespace "" is empty$/));
    // A long name is cut short in the message and control characters stay escaped.
    assert.throws(
      () => checkObjectName(`\n${"x".repeat(5000)}`),
      (err: Error) => {
        assert.ok(err.message.length < 400, err.message);
        assert.ok(!err.message.includes("\n"), err.message);
        return true;
      },
    );
  });

  it("splits a namespace/name key only when both parts are valid", () => {
    assert.deepEqual(parseObjectKey("factory-7/stream.1"), { namespace: "factory-7", name: "stream.1" });
    for (const bad of ["", "a", "/a", "a/", "a/b/c", "../x", "a/..", "A/b", "a/b?c"]) {
      assert.equal(parseObjectKey(bad), undefined, bad);
    }
  });
});
