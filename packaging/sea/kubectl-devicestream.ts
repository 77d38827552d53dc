// The kubectl plugin as one executable (packaging/sea/build.ts), the binary of the krew release
// archives (packaging/krew): `kubectl devicestream …` with no Node.js on the machine.
import { runKubectlPlugin } from "../../client/kubectl-plugin.ts";
import { describeError } from "../../runtime/errors.ts";

// The bundle is CommonJS (what every Node.js 24 single executable can run), so no top-level await.
runKubectlPlugin(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`kubectl devicestream: ${describeError(err)}\n`);
    process.exitCode = 1;
  },
);
