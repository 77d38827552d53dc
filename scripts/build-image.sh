#!/usr/bin/env bash
# Builds the project's OCI image without Docker, with umoci (Debian), as `Dockerfile` describes it:
# same files under /app, same user, entrypoint, command, environment and ports
# (test/image/image.test.ts checks both agree). Also builds the test node's pause image.
#
#   bash scripts/build-image.sh [OUT_DIR]   # prints OUT_DIR (default: a cache folder) last
#
# OUT_DIR/devicestreams.oci.tar and OUT_DIR/pause.oci.tar are OCI archives (`ctr images import`
# loads them); OUT_DIR/devicestreams and OUT_DIR/pause are the same images as OCI layouts.
#
# The base differs from the Dockerfile's node:24-bookworm-slim, which cannot be pulled here: the
# image holds the Node.js 24 binary the project installs from npm (docs/adr/0001) and the few
# shared libraries it links (from this Debian bookworm, the slim image's distribution), so it is
# distroless-like: no shell, no package manager. Needs root (files must be owned by root).
set -euo pipefail
{

root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(node -p 'require(process.argv[1]).version' "$root/package.json" 2>/dev/null ||
  sed -n 's/^  "version": "\(.*\)",$/\1/p' "$root/package.json")"
out="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/devicestreams/image}"
log() { echo "build-image: $*" >&2; }

for tool in umoci npm tar; do
  command -v "$tool" >/dev/null 2>&1 || {
    log "$tool is missing (apt-get install umoci npm tar)"
    exit 1
  }
done
nodebin="$root/node_modules/node/bin/node"
[ -x "$nodebin" ] || {
  log "$nodebin is missing: run npm ci first (it installs Node.js 24, docs/adr/0001)"
  exit 1
}
pausebin="$(bash "$root/scripts/k8s-test-binaries.sh" node | tail -1)/pause"

mtime="$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)"
mkdir -p "$out"
work="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The folders the Dockerfile copies, read from it so the two cannot drift apart.
mapfile -t copies < <(sed -n 's/^COPY \([a-z][a-z-]*\) .*/\1/p' "$root/Dockerfile" | grep -vx 'package.json\|package-lock.json')

rootfs="$work/rootfs"
mkdir -p "$rootfs/app" "$rootfs/usr/local/bin" "$rootfs/etc"
install -d -m 1777 "$rootfs/tmp"
# Production dependencies only, as the Dockerfile's deps stage installs them; kept per lockfile, so
# a rebuild with the same package-lock.json skips npm ci.
deps="$out/deps-$(cat "$root/package.json" "$root/package-lock.json" | sha256sum | cut -c1-16)"
if [ ! -d "$deps/node_modules" ]; then
  rm -rf "$out"/deps-*
  cp "$root/package.json" "$root/package-lock.json" "$work/"
  (cd "$work" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  mkdir -p "$deps"
  mv "$work/node_modules" "$deps/node_modules"
fi
cp -a "$deps/node_modules" "$rootfs/app/node_modules"
cp "$root/package.json" "$rootfs/app/"
for dir in "${copies[@]}"; do
  # git's view of the folder (tracked files only: no local logs or caches), less what .dockerignore
  # keeps out of the build context (tests, keys).
  (cd "$root" && git ls-files -z -- "$dir" ':!:**/*.test.ts' ':!:**/*.pem' ':!:**/*.key' ':!:**/.env*' \
    ':!:**/*.cpuprofile') | (cd "$root" && xargs -0 cp --parents -t "$rootfs/app")
done
cp "$nodebin" "$rootfs/usr/local/bin/node"
# The dynamic loader and every library node links, at the paths the loader looks for them.
for lib in $(ldd "$nodebin" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
# Readable by the process, writable only by root: the image runs as 65532.
chown -R 0:0 "$rootfs"
chmod -R u+rwX,go+rX,go-w "$rootfs"
chmod 1777 "$rootfs/tmp"

image() { # image <layout dir> <tag> <rootfs> <umoci config args...>
  local layout="$1" tag="$2" fs="$3"
  shift 3
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  # One layer, written by GNU tar: root-owned, sorted, dated by the last commit, so the same tree
  # gives the same layer (umoci insert 0.4.7 also truncated large layers' tar streams).
  (cd "$fs" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | LC_ALL=C sort -z |
    tar --null -T - --numeric-owner --owner=0 --group=0 --sort=name --mtime="@$mtime" -cf "$work/layer.tar")
  umoci raw add-layer --image "$layout:$tag" "$work/layer.tar"
  rm -f "$work/layer.tar"
  umoci config --image "$layout:$tag" --os linux --architecture amd64 --no-history "$@"
  umoci gc --layout "$layout"
}

image "$work/devicestreams" "$version" "$rootfs" \
  --config.user 65532:65532 --config.workingdir /app \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env NODE_ENV=production --config.env HOME=/tmp \
  --config.exposedports 8443/tcp --config.exposedports 8444/tcp \
  --config.exposedports 9090/tcp --config.exposedports 9091/tcp \
  --config.entrypoint node --config.entrypoint --initial-old-space-size=64 --config.entrypoint --max-semi-space-size=8 \
  --config.entrypoint /app/cli/devicestreams.ts --config.cmd --help

pausefs="$work/pausefs"
mkdir -p "$pausefs"
cp "$pausebin" "$pausefs/pause"
chmod 0755 "$pausefs/pause"
image "$work/pause" 1 "$pausefs" --config.user 65535:65535 --config.entrypoint /pause

for name in devicestreams pause; do
  tar -C "$work/$name" -cf "$work/$name.oci.tar" .
  rm -rf "${out:?}/$name"
  mv "$work/$name" "$work/$name.oci.tar" "$out/"
done
log "built $out/devicestreams.oci.tar ($version) and $out/pause.oci.tar"
echo "$out"
exit 0
}
