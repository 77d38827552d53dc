// The fault loops' judge must be able to tell: an echo that comes back whole, one cut short with a
// FIN (the defect: a claim of success with wrong bytes), one with a byte changed, and a reset.
import assert from "node:assert/strict";
import { echoTransfer } from "../helpers/echo-transfer.ts";
import { listen, type TcpTarget } from "../helpers/tcp-targets.ts";

describe("fault loops: judging a transfer", () => {
  const targets: TcpTarget[] = [];
  afterEach(async () => {
    await Promise.all(targets.splice(0).map((t) => t.close()));
  });
  const target = async (handler: Parameters<typeof listen>[0]) => {
    const t = await listen(handler);
    targets.push(t);
    return t.port;
  };
  const fast = 64 * 1024 * 1024;

  it("a whole echo is ok", async () => {
    const port = await target((s) => s.pipe(s));
    assert.equal((await echoTransfer(port, 300_000, fast).outcome).kind, "ok");
  });

  it("an echo cut short with a FIN is wrong bytes", async () => {
    const port = await target((s) => {
      let n = 0;
      s.on("data", (c: Buffer) => {
        if (n < 100_000) s.write(c.subarray(0, 100_000 - n));
        n += c.length;
      });
      s.on("end", () => s.end());
    });
    const out = await echoTransfer(port, 300_000, fast).outcome;
    assert.equal(out.kind, "wrong-bytes", out.detail);
  });

  it("an echo with one byte changed is wrong bytes", async () => {
    const port = await target((s) => {
      let first = true;
      s.on("data", (c: Buffer) => {
        if (first) c[0] = c[0]! ^ 1;
        first = false;
        s.write(c);
      });
      s.on("end", () => s.end());
    });
    const out = await echoTransfer(port, 300_000, fast).outcome;
    assert.equal(out.kind, "wrong-bytes", out.detail);
  });

  it("a reset is an error", async () => {
    const port = await target((s) => s.once("data", () => s.resetAndDestroy()));
    const out = await echoTransfer(port, 300_000, fast).outcome;
    assert.equal(out.kind, "error", out.detail);
  });
});
