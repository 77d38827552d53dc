import assert from "node:assert/strict";
import { peerKey } from "./peer-address.ts";

describe("peer address", () => {
  it("keys IPv4 peers by address, whatever their port or IPv6 mapping", () => {
    assert.equal(peerKey("192.0.2.7:5000"), "192.0.2.7");
    assert.equal(peerKey("::ffff:192.0.2.7:5001"), "192.0.2.7");
    assert.equal(peerKey("[::ffff:192.0.2.7]:5001"), "192.0.2.7");
  });

  it("keys IPv6 peers by their /64, so one host cannot hop between addresses of its prefix", () => {
    const a = peerKey("2001:db8:1:2:aaaa::1:443");
    assert.equal(a, "2001:db8:1:2::/64");
    assert.equal(peerKey("[2001:0db8:0001:0002:bbbb:cccc:dddd:eeee]:1"), a);
    assert.equal(peerKey("2001:db8::5:80"), "2001:db8:0:0::/64");
    assert.equal(peerKey("::1:9"), "0:0:0:0::/64");
    assert.notEqual(peerKey("2001:db8:1:3::1:443"), a);
  });

  it("keeps anything else as it is", () => {
    assert.equal(peerKey("unknown"), "unknown");
  });
});
