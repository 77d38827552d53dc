import assert from "node:assert/strict";
import type { Logger } from "../runtime/log.ts";
import { type Component, type Elector, Manager } from "./manager.ts";

/** Keeps what the manager logs, so a test can check that a failure was reported. */
function quietLog(lines: string[]): Logger {
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (m) => void lines.push(`warn ${m}`),
    error: (m) => void lines.push(`error ${m}`),
    child: () => log,
    enabled: () => false,
  };
  return log;
}

/** Records each start and stop, in order. */
function recorder() {
  const events: string[] = [];
  const component = (
    name: string,
    o: { leaderOnly?: boolean; start?: (signal: AbortSignal) => Promise<void> | void } = {},
  ): Component => ({
    name,
    leaderOnly: o.leaderOnly,
    start: async (signal) => {
      events.push(`start ${name}`);
      await o.start?.(signal);
    },
    stop: () => void events.push(`stop ${name}`),
  });
  return { events, component };
}

/** Stands in for LeaderElector: the test decides when the lease is won and lost. */
class FakeElector implements Elector {
  leading = false;
  private readonly events: string[];
  private readonly lead: () => void;
  private readonly unlead: () => Promise<void>;

  constructor(events: string[], lead: () => void, unlead: () => Promise<void>) {
    this.events = events;
    this.lead = lead;
    this.unlead = unlead;
  }

  start(): void {
    this.events.push("campaign");
  }

  win(): void {
    this.leading = true;
    this.lead();
  }

  lose(): Promise<void> {
    this.leading = false;
    return this.unlead();
  }

  async stop(): Promise<void> {
    if (this.leading) await this.lose();
    this.events.push("release the lease");
  }
}

/** Lets queued leadership transitions run. */
async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

function withElector(events: string[], lines: string[] = [], onLeaderFailure?: (err: unknown) => void) {
  let elector: FakeElector | undefined;
  const manager = new Manager({
    log: quietLog(lines),
    elector: (lead, unlead) => {
      elector = new FakeElector(events, lead, unlead);
      return elector;
    },
    onLeaderFailure,
  });
  return { manager, elector: () => elector! };
}

describe("Manager", () => {
  it("starts components in order, the leader-only ones once leading, and stops all in reverse", async () => {
    const { events, component } = recorder();
    const manager = new Manager({ log: quietLog([]) }).add(
      component("caches"),
      component("endpoints"),
      component("streams", { leaderOnly: true }),
      component("hub"),
      component("devices", { leaderOnly: true }),
    );
    await manager.start();
    await until("leadership", () => manager.isLeader);
    assert.deepEqual(events, ["start caches", "start endpoints", "start hub", "start streams", "start devices"]);
    events.length = 0;
    await manager.stop();
    assert.equal(manager.isLeader, false);
    assert.deepEqual(events, ["stop devices", "stop streams", "stop hub", "stop endpoints", "stop caches"]);
  });

  it("starts leader-only components when the lease is won and stops them, in reverse, when it is lost", async () => {
    const { events, component } = recorder();
    const { manager, elector } = withElector(events);
    manager.add(
      component("caches"),
      component("streams", { leaderOnly: true }),
      component("devices", { leaderOnly: true }),
    );
    await manager.start();
    assert.deepEqual(events, ["start caches", "campaign"], "no leader-only component runs before the lease is won");
    assert.equal(manager.isLeader, false);

    events.length = 0;
    elector().win();
    await until("leadership", () => manager.isLeader);
    assert.deepEqual(events, ["start streams", "start devices"]);

    events.length = 0;
    await elector().lose();
    assert.equal(manager.isLeader, false);
    assert.deepEqual(events, ["stop devices", "stop streams"], "the caches keep running");

    events.length = 0;
    elector().win();
    await until("leadership again", () => manager.isLeader);
    assert.deepEqual(events, ["start streams", "start devices"]);

    events.length = 0;
    await manager.stop();
    assert.deepEqual(events, ["stop devices", "stop streams", "release the lease", "stop caches"]);
  });

  it("losing the lease while a leader-only start waits aborts it and starts none after it", async () => {
    const { events, component } = recorder();
    const { manager, elector } = withElector(events);
    let aborted = false;
    const waitsForever = (signal: AbortSignal) =>
      new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => {
          aborted = true;
          resolve();
        }),
      );
    manager.add(
      component("streams", { leaderOnly: true, start: waitsForever }),
      component("devices", { leaderOnly: true }),
    );
    await manager.start();
    elector().win();
    await until("the start to begin", () => events.includes("start streams"));
    await elector().lose();
    assert.ok(aborted, "the waiting start saw its signal abort");
    assert.equal(manager.isLeader, false);
    assert.deepEqual(events, ["campaign", "start streams", "stop streams"]);
    await manager.stop();
  });

  it("a component that fails to start: those before it stop in reverse and start() throws", async () => {
    const { events, component } = recorder();
    const lines: string[] = [];
    const manager = new Manager({ log: quietLog(lines) }).add(
      component("caches"),
      component("endpoints"),
      component("hub", {
        start: () => {
          throw new Error("port 9090 is in use");
        },
      }),
      component("late"),
      component("streams", { leaderOnly: true }),
    );
    await assert.rejects(manager.start(), /port 9090 is in use/);
    assert.deepEqual(events, ["start caches", "start endpoints", "start hub", "stop endpoints", "stop caches"]);
    assert.equal(manager.isLeader, false);
    assert.ok(lines.some((l) => l.startsWith("error cannot start")));
  });

  it("a leader-only component that fails to start: the others stop in reverse and onLeaderFailure hears of it", async () => {
    const { events, component } = recorder();
    const failures: unknown[] = [];
    const { manager, elector } = withElector(events, [], (err) => failures.push(err));
    manager.add(
      component("caches"),
      component("gauge", { leaderOnly: true }),
      component("streams", { leaderOnly: true }),
      component("usage", {
        leaderOnly: true,
        start: () => {
          throw new Error("broken");
        },
      }),
      component("devices", { leaderOnly: true }),
    );
    await manager.start();
    events.length = 0;
    elector().win();
    await until("the failure to be reported", () => failures.length > 0);
    assert.match(String(failures[0]), /broken/);
    assert.equal(manager.isLeader, false);
    assert.deepEqual(events, ["start gauge", "start streams", "start usage", "stop streams", "stop gauge"]);

    events.length = 0;
    await manager.stop();
    assert.deepEqual(events, ["release the lease", "stop caches"], "nothing leader-only is stopped twice");
  });
});
