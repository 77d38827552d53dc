import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../test/helpers/wait.ts";
import { changedFields, effectiveLimits, fixedFieldChanged, watchConfigFile } from "./config-reload.ts";
import type { StreamConfig } from "./contract.ts";
import type { RelayLimits } from "./pairing.ts";

const base: StreamConfig = {
  version: 1,
  stream: "ns/s",
  service: "ssh",
  credentials: [
    { role: "source", sha256: "a".repeat(64) },
    { role: "destination", sha256: "b".repeat(64) },
  ],
};

describe("relay: relay.json changes", () => {
  it("stream and service cannot change live; credentials, expiry and limits can", () => {
    assert.match(fixedFieldChanged(base, { ...base, stream: "ns/t" }) ?? "", /stream changed from "ns\/s" to "ns\/t"/);
    assert.match(fixedFieldChanged(base, { ...base, service: "web" }) ?? "", /service changed/);
    assert.match(
      fixedFieldChanged(base, { ...base, services: ["ssh", "web"] }) ?? "",
      /services changed from ssh to ssh,web/,
    );
    assert.equal(fixedFieldChanged(base, { ...base, services: ["ssh"] }), undefined, "the same one service");
    const next: StreamConfig = { ...base, expiresAt: "2030-01-01T00:00:00Z", limits: { maxConnections: 5 } };
    assert.equal(fixedFieldChanged(base, next), undefined);
    assert.deepEqual(changedFields(base, next), ["expiresAt", "limits.maxConnections"]);
    assert.deepEqual(changedFields(next, base), ["expiresAt", "limits.maxConnections"]);
    // Whether the source token is accepted applies at once too (authenticate reads the current config).
    assert.deepEqual(changedFields(base, { ...base, acceptSourceToken: false }), ["acceptSourceToken"]);
  });

  it("relay.json's limits override the flags; without them the flags hold again", () => {
    const flags: RelayLimits = {
      maxConnections: 1000,
      idleTimeoutMs: 3_600_000,
      dialTimeoutMs: 10_000,
      attachWaitMs: 5000,
      maxFrameBytes: 65536,
      bandwidthBytesPerSecond: 0,
    };
    assert.deepEqual(effectiveLimits(flags, { ...base, limits: { maxConnections: 2, idleTimeoutMs: 0 } }), {
      ...flags,
      maxConnections: 2,
      idleTimeoutMs: 0,
    });
    assert.deepEqual(effectiveLimits(flags, base), flags);
  });

  it("the poll sees a change the watch may miss; an unchanged text is no change", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ds-watch-"));
    const path = join(dir, "relay.json");
    writeFileSync(path, "one");
    const seen: string[] = [];
    const errors: string[] = [];
    const w = watchConfigFile(
      path,
      "one",
      (t) => seen.push(t),
      (e) => errors.push(e),
      { pollMs: 50 },
    );
    try {
      writeFileSync(path, "one");
      writeFileSync(path, "two");
      await waitFor("the change", () => seen.length === 1);
      rmSync(path);
      await waitFor("the read error", () => errors.length === 1);
      writeFileSync(path, "two");
      writeFileSync(path, "three");
      await waitFor("the next change", () => seen.at(-1) === "three");
      assert.deepEqual(seen, ["two", "three"]);
      assert.equal(errors.length, 1, "a missing file is said once, not at every poll");
    } finally {
      w.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
