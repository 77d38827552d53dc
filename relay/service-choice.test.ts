import assert from "node:assert/strict";
import { metadataKeys } from "../proto/metadata.ts";
import { requestedService } from "./service-choice.ts";

// Not grpc-js's Metadata, which refuses some of these values itself: a peer's HTTP/2 headers reach
// the relay's server unchecked.
const md = (entries: Array<[string, string]>) => ({
  get: (key: string) => entries.filter(([k]) => k === key).map(([, v]) => v),
});

describe("service choice (Connect metadata)", () => {
  it("no metadata: no service named (the stream's first), port 0", () => {
    assert.deepEqual(requestedService(md([])), { ok: true, service: undefined, port: 0 });
  });
  it("reads the service and the port", () => {
    assert.deepEqual(
      requestedService(
        md([
          [metadataKeys.service, "ftp"],
          [metadataKeys.port, "30005"],
        ]),
      ),
      { ok: true, service: "ftp", port: 30005 },
    );
  });
  it("refuses values that are not printable, too long, repeated or not a port, quoting them safely", () => {
    const cases: Array<[Array<[string, string]>, RegExp]> = [
      [[[metadataKeys.service, "a".repeat(64)]], /at most 63 characters/],
      [[[metadataKeys.service, "ssh\u202e"]], /not "ssh\\u202e"/],
      [[[metadataKeys.service, "web page"]], /printable/],
      [
        [
          [metadataKeys.service, "ssh"],
          [metadataKeys.service, "web"],
        ],
        /given once, not 2 times/,
      ],
      [[[metadataKeys.port, "65536"]], /must be a port/],
      [[[metadataKeys.port, "-1"]], /must be a port/],
      [[[metadataKeys.port, "0x10"]], /must be a port/],
      [[[metadataKeys.port, "123456"]], /must be a port/],
    ];
    for (const [entries, why] of cases) {
      const r = requestedService(md(entries));
      assert.ok(!r.ok, JSON.stringify(entries));
      assert.match(r.message, why);
    }
  });
});
