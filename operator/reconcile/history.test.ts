import assert from "node:assert/strict";
import type { DeviceStream, StreamRecord } from "../../api/v1alpha1.ts";
import { maxRecords, streamRecord, withRecord } from "./history.ts";
import { deleteAt } from "./retention.ts";

const stream = (status: DeviceStream["status"], spec: Partial<DeviceStream["spec"]> = {}): DeviceStream => ({
  apiVersion: "devicestreams.io/v1alpha1",
  kind: "DeviceStream",
  metadata: { name: "s1", namespace: "ns", uid: "u1", creationTimestamp: "2026-01-01T10:00:00Z" },
  spec: {
    device: "pump-1",
    service: "ssh",
    timeouts: { connect: "5m", idle: "15m", maxLifetime: "8h" },
    limits: { maxConnections: 100 },
    relay: { exposure: "ClusterIP" },
    ...spec,
  },
  status,
});

const ended = (reason: string, endedAt = "2026-01-01T11:00:00Z") =>
  stream({
    phase: "Expired",
    endedAt,
    connectedAt: "2026-01-01T10:00:05Z",
    bytes: { toDevice: 10, fromDevice: 20 },
    conditions: [{ type: "Ready", status: "False", reason, message: "", lastTransitionTime: endedAt }],
  });

describe("history: a stream's record on its Device", () => {
  it("an ended stream: when, bytes each way, phase and the Ready reason", () => {
    assert.deepEqual(streamRecord(ended("IdleTimeout"), Date.parse("2026-01-02T00:00:00Z")), {
      name: "s1",
      uid: "u1",
      service: "ssh",
      createdAt: "2026-01-01T10:00:00Z",
      connectedAt: "2026-01-01T10:00:05Z",
      endedAt: "2026-01-01T11:00:00Z",
      phase: "Expired",
      reason: "IdleTimeout",
      bytes: { toDevice: 10, fromDevice: 20 },
    });
  });

  it("a stream deleted while live ends now, reason Deleted; the user comes from status.lastConnection if there", () => {
    const live = stream({ phase: "Connected", lastConnection: { user: "alice", time: "x" } } as DeviceStream["status"]);
    const r = streamRecord(live, Date.parse("2026-01-01T12:00:00.250Z"));
    assert.equal(r.endedAt, "2026-01-01T12:00:00Z");
    assert.equal(r.phase, "Connected");
    assert.equal(r.reason, "Deleted");
    assert.equal(r.user, "alice");
    assert.deepEqual(r.bytes, { toDevice: 0, fromDevice: 0 });
    assert.equal(streamRecord(stream(undefined), 0).user, undefined);
  });

  it("keeps the newest maxRecords, newest end first, one record per UID", () => {
    let list: StreamRecord[] = [];
    for (let i = 0; i < maxRecords + 5; i++) {
      const at = new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString();
      list = withRecord(list, { name: `s${i}`, uid: `u${i}`, endedAt: at });
    }
    assert.equal(list.length, maxRecords);
    assert.equal(list[0]!.name, `s${maxRecords + 4}`);
    assert.equal(list.at(-1)!.name, "s5");
    // Written again (a retried finalizer): replaced, not doubled.
    const again = withRecord(list, { ...list[3]!, reason: "again" });
    assert.equal(again.length, maxRecords);
    assert.equal(again.filter((r) => r.uid === list[3]!.uid).length, 1);
    // An older stream recorded late goes below the newer ones, or off the end.
    assert.equal(withRecord(list, { name: "old", uid: "old", endedAt: "2025-01-01T00:00:00Z" }).at(-1)!.name, "s5");
  });
});

describe("retention: when an ended stream is deleted", () => {
  const end = Date.parse("2026-01-01T11:00:00Z");
  it("spec.ttlSecondsAfterFinished wins over the operator's default; 0 is at once", () => {
    assert.equal(deleteAt(stream(ended("X").status, { ttlSecondsAfterFinished: 60 }), 3_600_000), end + 60_000);
    assert.equal(deleteAt(stream(ended("X").status, { ttlSecondsAfterFinished: 0 }), 3_600_000), end);
    assert.equal(deleteAt(stream(ended("X").status, { ttlSecondsAfterFinished: 60 }), 0), end + 60_000);
  });
  it("without it, the default; a default of 0 keeps ended streams", () => {
    assert.equal(deleteAt(ended("X"), 3_600_000), end + 3_600_000);
    assert.equal(deleteAt(ended("X"), 0), undefined);
  });
  it("a live stream, or one without endedAt, is never deleted by retention", () => {
    assert.equal(deleteAt(stream({ phase: "Connected" }, { ttlSecondsAfterFinished: 0 }), 1), undefined);
    assert.equal(deleteAt(stream({ phase: "Failed" }, { ttlSecondsAfterFinished: 0 }), 1), undefined);
  });
});
