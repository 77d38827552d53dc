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
