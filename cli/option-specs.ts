// Every command's option specs by name: the docs' flag tables are written from these
// (scripts/option-tables.ts) and option-specs.test.ts checks each set's defaults and --help.
import { pluginOptionSpecs } from "../client/kubectl-plugin.ts";
import { connectOptionSpecs } from "../client/main.ts";
import { webOptionSpecs } from "../client/web/command.ts";
import { gatewayOptionSpecs } from "../gateway/options.ts";
import { operatorOptionSpecs } from "../operator/options.ts";
import { relayOptionSpecs } from "../relay/contract.ts";
import type { OptionSpecs } from "../runtime/options.ts";
import { agentOptionSpecs } from "../sidecar/main.ts";
import { demoOptionSpecs } from "./demo.ts";

export const commandOptionSpecs: Record<string, OptionSpecs> = {
  relay: relayOptionSpecs,
  agent: agentOptionSpecs,
  connect: connectOptionSpecs,
  gateway: gatewayOptionSpecs,
  operator: operatorOptionSpecs,
  demo: demoOptionSpecs,
  "kubectl-devicestream": pluginOptionSpecs,
  /** Part of the plugin's; its own table in docs/browser-terminal.md. */
  "kubectl-devicestream-web": webOptionSpecs,
};
