import assert from "node:assert/strict";
import type { DeviceStreamsError } from "../../runtime/errors.ts";
import { encodeServerMessage, maxCols, maxRows, parsePageMessage, parseSize } from "./messages.ts";

describe("browser terminal messages", () => {
  const refused = (text: string, why: RegExp) =>
    assert.throws(
      () => parsePageMessage(text),
      (err: DeviceStreamsError) => err.code === "DS_WEB_BAD_MESSAGE" && why.test(err.message),
    );

  it("reads resize and host-key answers", () => {
    assert.deepEqual(parsePageMessage('{"type":"resize","cols":120,"rows":40}'), {
      type: "resize",
      cols: 120,
      rows: 40,
    });
    assert.deepEqual(parsePageMessage('{"type":"host-key","accept":true}'), { type: "host-key", accept: true });
    assert.deepEqual(parsePageMessage('{"type":"host-key","accept":false,"extra":1}'), {
      type: "host-key",
      accept: false,
    });
  });

  it("refuses what is malformed, unknown or out of bounds, saying what", () => {
    refused("not json", /not JSON/);
    refused("[1]", /unknown control message type undefined/);
    refused("null", /not a JSON object/);
    refused('{"type":"exec","command":"rm"}', /unknown control message type "exec"/);
    refused('{"type":"resize","cols":0,"rows":24}', /cols must be an integer 1–1000, not 0/);
    refused(`{"type":"resize","cols":80,"rows":${maxRows + 1}}`, /rows must be an integer 1–500/);
    refused('{"type":"resize","cols":80.5,"rows":24}', /cols/);
    refused('{"type":"resize","cols":"80","rows":24}', /cols must be an integer 1–1000, not "80"/);
    refused('{"type":"host-key","accept":"yes"}', /accept: true or false/);
    refused(`{"type":"resize","pad":"${"x".repeat(1100)}"}`, /at most 1024/);
  });

  it("bounds the size a page may ask for", () => {
    assert.deepEqual(parseSize(maxCols, maxRows), { cols: maxCols, rows: maxRows });
    assert.throws(() => parseSize(Number.NaN, 24), /cols/);
    assert.throws(() => parseSize(80, -1), /rows/);
  });

  it("writes server messages as JSON text", () => {
    assert.equal(encodeServerMessage({ type: "exit", status: 0 }), '{"type":"exit","status":0}');
  });
});
