#!/usr/bin/env bash
# Starts a real one-node Kubernetes cluster for tests and for people, as root: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd (CRI, runc, CNI bridge +
# host-local + loopback + portmap), kubelet, kube-proxy (iptables) and CoreDNS, with the project's
# image and a pause image loaded into containerd. All of it runs in its own network namespace
# (common.sh); `down.sh` stops it and removes what it made.
#
#   bash scripts/node-cluster/up.sh && export KUBECONFIG=/var/lib/devicestreams-node/admin.kubeconfig
#
# The last line of stdout is the admin kubeconfig's path. Logs: $DIR/logs. Binaries are built from
# Go modules and cached (scripts/k8s-test-binaries.sh node); Debian packages are installed if missing.
set -euo pipefail
{

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"
# shellcheck source=pki.sh
. "$here/pki.sh"
start=$SECONDS

[ "$(id -u)" = 0 ] || {
  log "needs root (network namespaces, containerd, kubelet)"
  exit 1
}
if ip netns list | grep -qw "$NETNS"; then
  log "already up (network namespace $NETNS exists); run down.sh first"
  exit 1
fi

need=()
for pkg in containerd runc containernetworking-plugins iptables conntrack umoci openssl curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
bins="$(bash "$here/../k8s-test-binaries.sh" node | tail -1)"
images="$(bash "$here/../build-image.sh" | tail -1)"

rm -rf "$DIR"
mkdir -p "$RUN" "$LOGS" "$DIR/cni/conf" "$DIR/kubelet"
for s in "${KUBELET_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$DIR/host-sysctls"

wait_for() { # wait_for <what> <seconds> <command...>
  local what="$1" deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out waiting for $what; logs in $LOGS"
      return 1
    fi
    sleep 1
  done
}
kubectl() { "$bins/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
# down.sh undoes whatever part ran if a later step fails (KEEP_FAILED=1 leaves it up to look at).
if [ -z "${KEEP_FAILED:-}" ]; then
  trap 'log "up failed; cleaning up (logs kept in $LOGS)"; KEEP_LOGS=1 bash "$here/down.sh"' ERR
fi

# The network: the namespace, one veth pair to the host, forwarding for the Pod bridge.
ip netns add "$NETNS"
ip link add "$HOST_VETH" type veth peer name "$NODE_VETH" netns "$NETNS"
ip addr add "$HOST_IP/30" dev "$HOST_VETH"
ip link set "$HOST_VETH" up
in_netns ip link set lo up
in_netns ip addr add "$NODE_IP/30" dev "$NODE_VETH"
in_netns ip link set "$NODE_VETH" up
in_netns ip route add default via "$HOST_IP"
in_netns sysctl -qw net.ipv4.ip_forward=1
in_netns sysctl -qw net.bridge.bridge-nf-call-iptables=1

pki "$DIR/pki"
for name in admin controller-manager scheduler node kube-proxy coredns; do
  kubeconfig "$DIR/pki" "$name" "$API_SERVER" >"$DIR/$name.kubeconfig"
done
chmod 600 "$DIR"/*.kubeconfig

# The control plane. etcd listens on the namespace's own loopback.
daemon etcd "$bins/etcd" --name=node --data-dir="$DIR/etcd" \
  --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
  --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
  --initial-cluster=node=http://127.0.0.1:2380 --unsafe-no-fsync=true
p="$DIR/pki"
daemon kube-apiserver "$bins/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --advertise-address="$NODE_IP" --secure-port=6443 --cert-dir="$p" \
  --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
  --allow-privileged=true --kubelet-certificate-authority="$p/ca.crt" \
  --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$p/apiserver-kubelet-client.key" --kubelet-preferred-address-types=InternalIP \
  --shutdown-send-retry-after=true
wait_for "kube-apiserver /readyz" 120 curl -sf --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
  "$API_SERVER/readyz"
daemon kube-controller-manager "$bins/kube-controller-manager" --kubeconfig="$DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1 --cert-dir="$DIR/kube-controller-manager" \
  --use-service-account-credentials=true --service-account-private-key-file="$p/sa.key" \
  --root-ca-file="$p/ca.crt" --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR"
daemon kube-scheduler "$bins/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig="$DIR/scheduler.kubeconfig" --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1

# containerd with its own root, state and socket, and the CNI config below.
cat >"$DIR/containerd.toml" <<EOF
version = 2
root = "$DIR/containerd"
state = "$RUN/containerd"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$IMAGE_PAUSE"
  # Kubelet asks for negative oom_score_adj (-998 for sandboxes), which needs CAP_SYS_RESOURCE; a
  # machine that runs us without it (this CI's does) fails every sandbox with "can't get final
  # child's PID from pipe". Restricted, containers get at least containerd's own score.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/conf"
EOF
cat >"$DIR/cni/conf/10-devicestreams-node.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "devicestreams-node",
  "plugins": [
    {
      "type": "bridge", "bridge": "dsbr0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR" }]], "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
daemon containerd containerd --config "$DIR/containerd.toml"
wait_for "containerd" 60 ctr --address "$CONTAINERD_SOCK" version
for image in devicestreams pause; do
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images import --base-name "$(
    case $image in devicestreams) echo ghcr.io/devicestreams/devicestreams ;; pause) echo "${IMAGE_PAUSE%:*}" ;; esac
  )" "$images/$image.oci.tar" >&2
done

# kubelet: cgroupfs like containerd's runc (SystemdCgroup = false; no systemd here), its own root.
cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $p/kubelet.crt
tlsPrivateKeyFile: $p/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
clusterDNS: [$NODE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: ""
serializeImagePulls: false
# Other tests share this disk and memory: evict only when truly out.
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
daemon kubelet "$bins/kubelet" --config="$DIR/kubelet/config.yaml" --kubeconfig="$DIR/node.kubeconfig" \
  --root-dir="$DIR/kubelet" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
  --cert-dir="$DIR/kubelet/pki"

cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: [$NODE_IP/32]
# Host-wide tunables: leave them alone.
conntrack: {maxPerCore: 0}
EOF
daemon kube-proxy "$bins/kube-proxy" --config="$DIR/kube-proxy.yaml"

# CoreDNS on the node's address (kubelet's clusterDNS), reading Services with its own user.
kubectl apply -f - >&2 <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "devicestreams-node:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "devicestreams-node:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "devicestreams-node:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "devicestreams-node:coredns"}
EOF
cat >"$DIR/Corefile" <<EOF
.:53 {
  bind $NODE_IP
  errors
  health 127.0.0.1:8080
  ready 127.0.0.1:8181
  kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
    kubeconfig $DIR/coredns.kubeconfig
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  cache 5
}
EOF
daemon coredns "$bins/coredns" -conf "$DIR/Corefile"

wait_for "node $NODE_NAME Ready" 180 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
wait_for "CoreDNS ready" 60 in_netns curl -sf http://127.0.0.1:8181/ready
trap - ERR
log "up in $((SECONDS - start))s; export KUBECONFIG=$KUBECONFIG_ADMIN"
echo "$KUBECONFIG_ADMIN"
exit 0
}
