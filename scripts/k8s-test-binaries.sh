#!/usr/bin/env bash
# Prints (as the last line of stdout) a folder holding kube-apiserver, etcd and
# kube-controller-manager: envtest's KUBEBUILDER_ASSETS layout. Uses $KUBEBUILDER_ASSETS when it
# already holds them; otherwise builds them from Go modules pinned in scripts/k8s-test-binaries/
# into a cache outside the repo, so a second run returns at once.
#
#   export KUBEBUILDER_ASSETS="$(bash scripts/k8s-test-binaries.sh | tail -1)"
#   bash scripts/k8s-test-binaries.sh helm   # also builds helm into the same folder
#   bash scripts/k8s-test-binaries.sh node   # also the node: kube-scheduler, kubelet, kube-proxy,
#                                            # kubectl, CoreDNS (../coredns) and a pause binary
#
# Progress goes to stderr. Needs Go >= 1.24 and the Go module proxy.
set -euo pipefail

# Braces make bash read the whole script before running it: a build takes minutes, and a script
# edited (or checked out anew) meanwhile must not be read from the middle.
{

HELM_VERSION=v3.19.5

here="$(cd "$(dirname "$0")" && pwd)"
module="$here/k8s-test-binaries"
# go.mod is the one place the versions are pinned (etcd: the one k8s.io/kubernetes requires).
pinned() { awk -v m="$1" '$1 == m { print $2; exit }' "$module/go.mod"; }
K8S_VERSION="$(pinned k8s.io/kubernetes)"
ETCD_VERSION="$(pinned go.etcd.io/etcd/server/v3)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/devicestreams/k8s-${K8S_VERSION}"

log() { echo "k8s-test-binaries: $*" >&2; }

want_helm=false
want_node=false
for arg in "$@"; do
  case "$arg" in
    helm) want_helm=true ;;
    node) want_node=true ;;
    *)
      log "unknown argument '$arg' (usage: $0 [helm] [node])"
      exit 2
      ;;
  esac
done

# "Exists" is not enough: a half-written or foreign binary must not pass, so run it and check
# the version it reports.
reports() { # reports <text expected in the output> <binary> [args...]
  local want="$1"
  shift
  local out
  # Captured, not piped into grep -q: with pipefail an early grep exit could fail the check.
  [ -x "$1" ] && out="$("$@" 2>/dev/null)" && [[ "$out" == *"$want"* ]]
}
control_plane_ok() { # control_plane_ok <dir>
  reports "$K8S_VERSION" "$1/kube-apiserver" --version && reports "${ETCD_VERSION#v}" "$1/etcd" --version &&
    reports "$K8S_VERSION" "$1/kube-controller-manager" --version
}
helm_ok() { reports "$HELM_VERSION" "$cache/helm" version --short; }
COREDNS_VERSION="$(awk '$1 == "github.com/coredns/coredns" { print $2; exit } $2 == "github.com/coredns/coredns" { print $3; exit }' "$here/coredns/go.mod")"
node_ok() {
  reports "$K8S_VERSION" "$cache/kubelet" --version && reports "$K8S_VERSION" "$cache/kube-proxy" --version &&
    reports "$K8S_VERSION" "$cache/kube-scheduler" --version &&
    reports "$K8S_VERSION" "$cache/kubectl" version --client &&
    reports "CoreDNS-${COREDNS_VERSION#v}" "$cache/coredns" -version && [ -x "$cache/pause" ]
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && ! $want_helm && ! $want_node; then
  if [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; using the build cache"
fi

if control_plane_ok "$cache" && { ! $want_helm || helm_ok; } && { ! $want_node || node_ok; }; then
  echo "$cache"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:$PATH"
  else
    log "Go >= 1.24 is needed to build the test control plane (https://go.dev/dl/)," \
      "or set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd"
    exit 1
  fi
fi

mkdir -p "$cache"
# Concurrent callers (parallel test runs) wait for one build instead of racing it.
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Same -X flags as kubernetes' hack/lib/version.sh, so /version and --version are right.
minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"
kv=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kv+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kv+=" -X $pkg.gitTreeState=clean"
done

if ! control_plane_ok "$cache"; then
  start=$SECONDS
  log "building kube-apiserver, kube-controller-manager $K8S_VERSION and etcd $ETCD_VERSION" \
    "into $cache (takes a while on a small machine)"
  (
    cd "$module"
    export CGO_ENABLED=0 GOFLAGS=-mod=readonly
    go build -p 2 -trimpath -ldflags "-s -w$kv" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    go build -p 2 -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
  ) >&2
  # Rename within one folder is atomic: readers see the old binary or the new one, never half.
  for bin in kube-apiserver kube-controller-manager etcd; do
    mv -f "$tmp/$bin" "$cache/$bin"
  done
  control_plane_ok "$cache" || {
    log "built binaries do not report the expected versions"
    exit 1
  }
  log "control plane built in $((SECONDS - start))s"
fi

if $want_helm && ! helm_ok; then
  start=$SECONDS
  log "building helm $HELM_VERSION into $cache"
  # helm's own module pins everything it needs, so it installs directly.
  (
    cd "$tmp"
    CGO_ENABLED=0 GOBIN="$tmp" go install -p 2 -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  ) >&2
  mv -f "$tmp/helm" "$cache/helm"
  helm_ok || {
    log "built helm does not report $HELM_VERSION"
    exit 1
  }
  log "helm built in $((SECONDS - start))s"
fi

if $want_node && ! node_ok; then
  start=$SECONDS
  log "building kube-scheduler, kubelet, kube-proxy, kubectl $K8S_VERSION, CoreDNS $COREDNS_VERSION" \
    "and pause into $cache (takes a while on a small machine)"
  (
    export CGO_ENABLED=0 GOFLAGS=-mod=readonly
    cd "$module"
    go build -p 2 -trimpath -ldflags "-s -w$kv" -o "$tmp/" k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl ./pause
    cd "$here/coredns"
    go build -p 2 -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
      -o "$tmp/coredns" .
  ) >&2
  for bin in kube-scheduler kubelet kube-proxy kubectl pause coredns; do
    mv -f "$tmp/$bin" "$cache/$bin"
  done
  node_ok || {
    log "built node binaries do not report the expected versions"
    exit 1
  }
  log "node binaries built in $((SECONDS - start))s"
fi

echo "$cache"
exit 0
}
