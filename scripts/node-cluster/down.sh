#!/usr/bin/env bash
# Stops the one-node cluster up.sh started and removes what it made: every process (its own, the
# containerd shims and every container), the mounts under its folder, the kubelet's cgroups, the
# network namespace (and with it the Pod bridge, the veth pair, kube-proxy's and CNI's iptables
# chains) and the host sysctls kubelet changed. Safe to run twice, or after a failed up.
#
#   bash scripts/node-cluster/down.sh       # KEEP_LOGS=1 keeps $DIR/logs
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"

pod_cgroups() { find /sys/fs/cgroup/*/kubepods -depth -type d 2>/dev/null; }

# kubelet first, so that nothing restarts the containers killed next.
stop_daemon kubelet
# Every container's processes are in a cgroup under kubepods (cgroupfs driver).
for _ in 1 2 3 4 5; do
  pids="$(pod_cgroups | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null; done | sort -u)"
  [ -n "$pids" ] || break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  sleep 0.5
done
for name in kube-proxy coredns containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop_daemon "$name"
done
# What is left in the namespace was started by the above (containerd's shims).
if ip netns list 2>/dev/null | grep -qw "$NETNS"; then
  for pid in $(ip netns pids "$NETNS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
fi

# Mounts under the folder (Pod volumes, container root filesystems, Pod network namespaces),
# deepest first.
if [ -d "$DIR" ]; then
  awk -v d="$DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
fi
pod_cgroups | while read -r d; do rmdir "$d" 2>/dev/null; done

ip netns del "$NETNS" 2>/dev/null
ip link del "$HOST_VETH" 2>/dev/null

# containerd 1.6 keeps its shims' sockets in /run/containerd/s whatever its state folder; a killed
# shim leaves its socket. Those made since up.sh ran are ours.
if [ -f "$DIR/host-sysctls" ] && [ -d /run/containerd/s ]; then
  find /run/containerd/s -type s -newer "$DIR/host-sysctls" -delete 2>/dev/null
  rmdir /run/containerd/s /run/containerd 2>/dev/null
fi
if [ -f "$DIR/host-sysctls" ]; then
  while IFS= read -r kv; do sysctl -qw "$kv" 2>/dev/null; done <"$DIR/host-sysctls"
fi

left="$(pod_cgroups)"
[ -z "$left" ] || log "cgroups left (busy): $left"
if [ -n "${KEEP_LOGS:-}" ] && [ -d "$LOGS" ]; then
  find "$DIR" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  log "down; logs kept in $LOGS"
else
  rm -rf "$DIR"
  log "down"
fi
exit 0
