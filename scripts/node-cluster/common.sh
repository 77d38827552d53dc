# Names and addresses of the one-node test cluster, shared by up.sh and down.sh (sourced).
# Everything lives in the network namespace $NETNS: the control plane's loopback ports, the Pod
# bridge, kube-proxy's iptables chains and CoreDNS are private to it, so nothing clashes with other
# tests on the host's loopback, and deleting the namespace deletes the network state. The host
# reaches the node over one veth pair.
NETNS=devicestreams-node
NODE_NAME=dsnode
HOST_VETH=ds-node-host
NODE_VETH=ds-node
HOST_IP=10.203.0.1 # host side of the veth pair
NODE_IP=10.203.0.2 # the node: API server (6443), kubelet (10250), CoreDNS (53)
POD_CIDR=10.204.0.0/24
SERVICE_CIDR=10.205.0.0/24
CLUSTER_DOMAIN=cluster.local
API_SERVER="https://$NODE_IP:6443"
# Files (config, certificates, data, logs) and sockets; DEVICESTREAMS_NODE_DIR moves them.
DIR="${DEVICESTREAMS_NODE_DIR:-/var/lib/devicestreams-node}"
RUN="$DIR/run"
LOGS="$DIR/logs"
KUBECONFIG_ADMIN="$DIR/admin.kubeconfig"
CONTAINERD_SOCK="$RUN/containerd.sock"
IMAGE_PAUSE=localhost/devicestreams/pause:1
# Host-wide sysctls kubelet sets (everything else it touches is per network namespace): down.sh
# puts back the values up.sh saw.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

log() { echo "node-cluster: $*" >&2; }
in_netns() { ip netns exec "$NETNS" "$@"; }

# Every process up.sh starts: its pid goes to run/<name>.pid for down.sh, its command line to
# run/<name>.cmd for restart.sh. nsenter joins only the network namespace; `ip netns exec` would also
# give it a mount namespace with a fresh /sys, without the cgroup mounts kubelet needs, and hide
# containerd's and kubelet's mounts from down.sh.
daemon() { # daemon <name> <command...>
  local name="$1"
  shift
  printf '%s\0' "$@" >"$RUN/$name.cmd"
  setsid nsenter --net="/run/netns/$NETNS" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$RUN/$name.pid"
  # Return once it leads its own session: until then it is in the caller's process group, and a
  # caller that kills its group when done (the tests' command runner) would take it along.
  for _ in $(seq 100); do
    [ "$(ps -o sid= -p "$pid" | tr -d ' ')" != "$pid" ] || return 0
    sleep 0.05
  done
}

stop_daemon() { # stop_daemon <name> [signal]: the signal (TERM), then KILL after 15s
  local pidfile="$RUN/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill "-${2:-TERM}" "$pid" 2>/dev/null; then
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
