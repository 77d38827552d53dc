// The chart's alerts (charts/devicestreams/files/alerts.yaml, embedded as the PrometheusRule's spec)
// pass `promtool check rules` and `promtool test rules` (alerts.rules-test.yaml), every alert has a
// case where it fires and one where it stays quiet, every metric they read is one the code
// registers (or Prometheus' own `up`), and docs/alerts.md explains each.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import { runCommand } from "../helpers/command.ts";

const root = join(import.meta.dirname, "../..");
const rulesFile = join(root, "charts/devicestreams/files/alerts.yaml");
const testsFile = join(import.meta.dirname, "alerts.rules-test.yaml");

interface Rule {
  alert: string;
  expr: string;
}
interface RuleTest {
  alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }>;
}

const rules = (load(readFileSync(rulesFile, "utf8")) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap(
  (g) => g.rules,
);
const cases = (load(readFileSync(testsFile, "utf8")) as { tests: RuleTest[] }).tests.flatMap((t) => t.alert_rule_test);

async function promtool(args: string[]) {
  const r = await runCommand("promtool", args, { timeoutMs: 60_000 }).catch((err: Error) => {
    throw new Error(`cannot run promtool (${err.message}): apt-get install prometheus (.ci/run does)`);
  });
  return { ok: r.code === 0, output: `${r.stdout}${r.stderr}` };
}

describe("alerts: the chart's PrometheusRule", function () {
  this.timeout(60_000);

  it("promtool check rules passes", async () => {
    const { ok, output } = await promtool(["check", "rules", rulesFile]);
    assert.ok(ok, output);
  });

  it("promtool test rules passes", async () => {
    const { ok, output } = await promtool(["test", "rules", testsFile]);
    assert.ok(ok, output);
  });

  it("covers relays failing, stuck streams, offline devices, caps, certificate expiry and error rates", () => {
    const names = rules.map((r) => r.alert);
    for (const needed of [
      "DeviceStreamsRelayDown",
      "DeviceStreamsStreamStuckPending",
      "DeviceStreamsDeviceOffline",
      "DeviceStreamsConcurrentStreamCapHit",
      "DeviceStreamsRelayConnectionCapHit",
      "DeviceStreamsHubConnectionCapHit",
      "DeviceStreamsCertificateExpiring",
      "DeviceStreamsReconcileErrors",
      "DeviceStreamsConnectionErrors",
    ]) {
      assert.ok(names.includes(needed), `no alert ${needed}`);
    }
  });

  for (const rule of rules) {
    it(`${rule.alert} has a case where it fires and one where it does not`, () => {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      assert.ok(
        mine.some((c) => c.exp_alerts.length > 0),
        `no promtool case expects ${rule.alert} to fire`,
      );
      assert.ok(
        mine.some((c) => c.exp_alerts.length === 0),
        `no promtool case expects ${rule.alert} to stay quiet`,
      );
    });
  }

  it("every metric the alerts read is registered in the code, and docs/alerts.md explains each alert", () => {
    const source = readFileSync(join(root, "README.md"), "utf8");
    const docs = readFileSync(join(root, "docs/alerts.md"), "utf8");
    for (const rule of rules) {
      for (const m of rule.expr.matchAll(/\b(devicestreams_[a-z_]+)/g)) {
        assert.ok(source.includes(`\`${m[1]}`), `${rule.alert} reads ${m[1]}, which README.md's Metrics table lacks`);
      }
      assert.ok(docs.includes(`### ${rule.alert}`), `docs/alerts.md has no section ### ${rule.alert}`);
    }
  });
});
