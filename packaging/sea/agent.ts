// The single-file agent's entry point (packaging/sea/build.ts bundles it into one executable):
// `devicestreams-agent OPTIONS` is `devicestreams agent OPTIONS`, for a device with no Kubernetes
// and no Node.js, such as a bare Linux box run by systemd (packaging/systemd).
import { describeError } from "../../runtime/errors.ts";
import { version } from "../../runtime/version.ts";
import { runAgent } from "../../sidecar/main.ts";

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--version") {
    process.stdout.write(`${version}\n`);
    return;
  }
  try {
    await runAgent(argv);
  } catch (err) {
    process.stderr.write(`devicestreams-agent: ${describeError(err)}\n`);
    process.exit(1);
  }
}

// The bundle is CommonJS (what every Node.js 24 single executable can run), so no top-level await.
void main(process.argv.slice(2));
