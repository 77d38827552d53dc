import assert from "node:assert/strict";
import { dns1123SubdomainError } from "../../kube/names.ts";
import { enrollmentSecretName } from "./enrollment-secret.ts";

describe("enrolment Secret names", () => {
  it("is <namespace>.<name>.enrollment, distinct for every namespace and name", () => {
    assert.equal(enrollmentSecretName("factory-1", "pump-7"), "factory-1.pump-7.enrollment");
    // A namespace has no dots: these would collide with a plain join on "-".
    assert.notEqual(enrollmentSecretName("a-b", "c"), enrollmentSecretName("a", "b-c"));
    assert.notEqual(enrollmentSecretName("a", "b.c-d"), enrollmentSecretName("a", "b-c.d"));
  });

  it("stays a valid Secret name for the longest namespace and name, and distinct when cut", () => {
    const ns = "n".repeat(63);
    const long = `${"x".repeat(200)}.${"y".repeat(52)}`;
    const a = enrollmentSecretName(ns, long);
    const b = enrollmentSecretName(ns, `${long.slice(0, -1)}z`);
    for (const name of [a, b, enrollmentSecretName(ns, `${"a".repeat(179)}-${"b".repeat(73)}`)]) {
      assert.equal(dns1123SubdomainError(name), undefined, name);
    }
    assert.notEqual(a, b);
    assert.ok(a.startsWith(`${ns}.xxx`) && a.endsWith(".enrollment"));
  });
});
