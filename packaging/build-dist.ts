// `npm run build` (and `prepack`): the JavaScript the npm package ships in dist/. Node refuses to
// strip types under node_modules, so an installed package cannot run the .ts sources the checkout
// runs; tsc (tsconfig.build.json) strips them and rewrites `./x.ts` imports to `./x.js`, nothing
// else. The generated protobuf code already is JavaScript and is copied as it is, and so is the
// browser terminal's page (client/web/page: HTML, CSS and browser JavaScript, served as files).
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = join(root, "dist");

rmSync(dist, { recursive: true, force: true });
execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
mkdirSync(join(dist, "proto/generated"), { recursive: true });
copyFileSync(join(root, "proto/generated/devicestreams.js"), join(dist, "proto/generated/devicestreams.js"));
cpSync(join(root, "client/web/page"), join(dist, "client/web/page"), { recursive: true });
// The bins, so they run from dist/ too (npm sets the mode itself when it installs them).
for (const bin of ["devicestreams", "kubectl-devicestream"]) chmodSync(join(dist, `cli/${bin}.js`), 0o755);
