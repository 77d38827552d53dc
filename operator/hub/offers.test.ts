import assert from "node:assert/strict";
import type { DeviceStream } from "../../api/v1alpha1.ts";
import { forDevice, OfferBook, offerable, relayAddress } from "./offers.ts";

const now = Date.parse("2030-01-01T00:00:00Z");

function stream(name: string, opts: { relayReady?: boolean; refused?: boolean; phase?: string; uid?: string } = {}) {
  const conditions = [
    { type: "RelayReady", status: opts.relayReady === false ? "False" : "True", reason: "x", message: "" },
  ];
  if (opts.refused) conditions.push({ type: "DeviceAccepted", status: "False", reason: "Refused", message: "no" });
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: { name, namespace: "ns", uid: opts.uid ?? `uid-${name}`, creationTimestamp: "2030-01-01T00:00:00Z" },
    spec: { device: "dev", service: "ssh", timeouts: { connect: "5m", idle: "15m", maxLifetime: "1h" } },
    status: {
      phase: opts.phase ?? "WaitingForDevice",
      conditions,
      relay: { endpoint: `${name}-relay.ns.svc:8443`, tlsServerName: `${name}-relay.ns.svc` },
    },
  } as unknown as DeviceStream;
}

const addr = (ds: DeviceStream) => relayAddress(ds, undefined);

describe("hub offers", () => {
  it("offers only running streams whose relay is ready and that the device did not refuse", () => {
    assert.equal(offerable(stream("a"), now), true);
    assert.equal(offerable(stream("a", { relayReady: false }), now), false);
    assert.equal(offerable(stream("a", { refused: true }), now), false);
    assert.equal(offerable(stream("a", { phase: "Expired" }), now), false);
    assert.equal(offerable(stream("a"), now + 3600_000), false, "past maxLifetime");
  });

  it("offers once, withdraws what ended, and offers a re-created stream of the same name", () => {
    const book = new OfferBook();
    assert.deepEqual(
      book.sync([stream("a"), stream("b", { relayReady: false })], now, addr).offer.map((s) => s.metadata.name),
      ["a"],
    );
    assert.deepEqual(book.sync([stream("a")], now, addr), { offer: [], withdraw: [] });
    assert.equal(book.update("ns/a", "accepted"), true);
    assert.equal(book.update("ns/zzz", "accepted"), false, "an answer for a stream never offered");
    const later = book.sync([stream("a", { phase: "Expired" }), stream("b")], now, addr);
    assert.deepEqual(
      later.offer.map((s) => s.metadata.name),
      ["b"],
    );
    assert.deepEqual(later.withdraw, [{ stream: "ns/a", reason: "the stream ended or was deleted" }]);
    assert.deepEqual(
      book.sync([stream("a", { uid: "new" }), stream("b")], now, addr).offer.map((s) => s.metadata.uid),
      ["new"],
    );
  });

  it("does not withdraw what the device itself refused, and a new session starts empty (re-offer)", () => {
    const book = new OfferBook();
    book.sync([stream("a")], now, addr);
    book.update("ns/a", "refused");
    assert.deepEqual(book.sync([stream("a", { refused: true })], now, addr), { offer: [], withdraw: [] });
    assert.equal(new OfferBook().sync([stream("a")], now, addr).offer.length, 1);
  });

  it("offers again, with the new address, when the relay Pod was replaced", () => {
    const book = new OfferBook();
    let ip = "127.0.0.5";
    const at = () => `${ip}:8443`;
    assert.equal(book.sync([stream("a")], now, at).offer.length, 1);
    assert.equal(book.sync([stream("a")], now, at).offer.length, 0);
    ip = "127.0.0.6";
    assert.equal(book.sync([stream("a")], now, at).offer.length, 1);
    assert.equal(book.address("ns/a"), "127.0.0.6:8443");
  });

  it("dials a LoadBalancer address first, then the relay Pod's IP, then the Service name", () => {
    const ds = stream("a");
    assert.equal(relayAddress(ds, undefined), "a-relay.ns.svc:8443");
    const owner = { controller: true, kind: "DeviceStream", name: "a", uid: ds.metadata.uid };
    const pod = { metadata: { name: "a-relay", ownerReferences: [owner] }, status: { podIP: "127.0.5.9" } };
    assert.equal(relayAddress(ds, pod as never), "127.0.5.9:8443");
    // A Pod of the relay's name that another object (or nobody) controls is not the relay.
    const impostor = { metadata: { name: "a-relay" }, status: { podIP: "127.0.6.6" } };
    assert.equal(relayAddress(ds, impostor as never), "a-relay.ns.svc:8443");
    const earlier = { ...impostor, metadata: { name: "a-relay", ownerReferences: [{ ...owner, uid: "old-uid" }] } };
    assert.equal(relayAddress(ds, earlier as never), "a-relay.ns.svc:8443");
    ds.status!.relay!.externalEndpoint = "203.0.113.7:8443";
    assert.equal(relayAddress(ds, pod as never), "203.0.113.7:8443");
  });

  it("offers a stream another Device (or another key) accepted to no one else", () => {
    const id = { uid: "d-1", publicKeySha256: "a".repeat(64) };
    const ds = stream("a");
    assert.equal(forDevice(ds, id), true, "nobody accepted it yet");
    ds.status!.device = { uid: "d-1", publicKeySHA256: "a".repeat(64) };
    assert.equal(forDevice(ds, id), true);
    assert.equal(forDevice(ds, { ...id, uid: "d-2" }), false, "a re-created Device");
    assert.equal(forDevice(ds, { ...id, publicKeySha256: "b".repeat(64) }), false, "a replaced key");
  });
});
