import assert from "node:assert/strict";
import { compareQuantities, isQuantity, parseQuantity } from "./quantity.ts";

describe("resource quantities", () => {
  it("parses decimal, binary and exponent suffixes exactly, in units of 10^-9", () => {
    assert.equal(parseQuantity("1"), 1_000_000_000n);
    assert.equal(parseQuantity("250m"), 250_000_000n);
    assert.equal(parseQuantity("0.1"), parseQuantity("100m"));
    assert.equal(parseQuantity("512Mi"), 512n * 1024n * 1024n * 1_000_000_000n);
    assert.equal(parseQuantity("1k"), parseQuantity("1e3"));
    assert.equal(parseQuantity("1E"), 10n ** 27n);
    assert.equal(parseQuantity("1.5Gi"), 1610612736n * 1_000_000_000n);
    assert.equal(parseQuantity("1n"), 1n);
    assert.equal(parseQuantity("0.1n"), 1n, "rounded up");
    assert.equal(parseQuantity("-2"), -2_000_000_000n);
    assert.equal(parseQuantity(".5"), 500_000_000n);
  });

  it("refuses what Kubernetes refuses", () => {
    for (const bad of ["", "1 Gi", "1GB", "Mi", "1.2.3", "one", "1ki", "1e", "0x10"]) {
      assert.equal(isQuantity(bad), false, bad);
    }
  });

  it("compares across suffixes, and copes with absurd sizes", () => {
    assert.equal(compareQuantities("1Gi", "1024Mi"), 0);
    assert.ok(compareQuantities("2Gi", "1Gi") > 0);
    assert.ok(compareQuantities("999m", "1") < 0);
    assert.ok(compareQuantities("999999999999999999999999999999E", "512Mi") > 0);
    assert.ok(compareQuantities("1e99999", "1Ei") > 0);
    assert.throws(() => compareQuantities("lots", "1"), /not a quantity: "lots"/);
  });
});
