#!/usr/bin/env bash
# Restarts one process of the running one-node cluster with the command line up.sh gave it, as an
# operator restarting a node's service would (a fault for tests: `restart.sh containerd`).
#
#   bash scripts/node-cluster/restart.sh containerd|kubelet|kube-proxy|coredns|kube-apiserver|... [SIGNAL]
#
# SIGNAL (default TERM) stops it first: KILL for a crash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"

name="${1:?usage: restart.sh NAME [SIGNAL]}"
[ -f "$RUN/$name.cmd" ] || {
  log "no $name in the running cluster ($RUN/$name.cmd is missing)"
  exit 1
}
mapfile -d '' cmd <"$RUN/$name.cmd"
stop_daemon "$name" "${2:-TERM}"
daemon "$name" "${cmd[@]}"
log "$name restarted (pid $(cat "$RUN/$name.pid"))"
