// The terminal page and what it loads: our own page (client/web/page/) and xterm.js with its fit
// addon from npm, served by our own server, never from a CDN. From a checkout or the npm package
// they are read from disk (dist/client/web/page is copied by packaging/build-dist.ts, xterm is a
// dependency); the single executable carries them as SEA assets (packaging/sea/build.ts).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { getAsset, isSea } from "node:sea";
import { fileURLToPath } from "node:url";

export interface Asset {
  type: string;
  body: Buffer;
}

const types = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

/** URL name → where the file is: `page:` ours, else a module path under node_modules. */
const sources = {
  "index.html": "page:index.html",
  "terminal.js": "page:terminal.js",
  "terminal.css": "page:terminal.css",
  "xterm.mjs": "@xterm/xterm/lib/xterm.mjs",
  "xterm.css": "@xterm/xterm/css/xterm.css",
  "addon-fit.mjs": "@xterm/addon-fit/lib/addon-fit.mjs",
} as const;
export type AssetName = keyof typeof sources;
export const assetNames = Object.keys(sources) as AssetName[];

/** The SEA asset key of a file. */
export const seaAssetKey = (name: AssetName) => `web/${name}`;

/** Each asset's file on disk (not in a single executable, which has no import.meta.url). */
export function webAssetFiles(): Record<AssetName, string> {
  const require = createRequire(import.meta.url);
  const out = {} as Record<AssetName, string>;
  for (const name of assetNames) {
    const source = sources[name];
    out[name] = source.startsWith("page:")
      ? fileURLToPath(new URL(`./page/${source.slice(5)}`, import.meta.url))
      : require.resolve(source);
  }
  return out;
}

function typeOf(name: string): string {
  const ext = name.slice(name.lastIndexOf(".") + 1);
  return ext === "mjs" ? types.js : types[ext as keyof typeof types];
}

/** Every asset, read once at start: a missing file fails the command, not a page load later. */
export function loadWebAssets(): Map<AssetName, Asset> {
  const assets = new Map<AssetName, Asset>();
  if (isSea()) {
    for (const name of assetNames) {
      assets.set(name, { type: typeOf(name), body: Buffer.from(getAsset(seaAssetKey(name))) });
    }
    return assets;
  }
  for (const [name, file] of Object.entries(webAssetFiles())) {
    assets.set(name as AssetName, { type: typeOf(name), body: readFileSync(file) });
  }
  return assets;
}
