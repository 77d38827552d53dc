# Certificates of the one-node cluster (sourced by up.sh): one CA signs the API server's and
# kubelet's serving certificates and every component's client certificate (CN = user, O = group,
# as the API server's x509 authenticator reads them), and a key pair signs ServiceAccount tokens.
pki() { # pki <dir>
  local d="$1"
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
      -subj "/CN=devicestreams-node-ca" 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  cert "$d" apiserver "/CN=kube-apiserver" server \
    "IP:$NODE_IP,IP:127.0.0.1,IP:${SERVICE_CIDR%.*}.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
  cert "$d" kubelet "/CN=$NODE_NAME" server "IP:$NODE_IP,DNS:$NODE_NAME"
  cert "$d" admin "/O=system:masters/CN=devicestreams-node-admin" client
  cert "$d" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  cert "$d" controller-manager "/CN=system:kube-controller-manager" client
  cert "$d" scheduler "/CN=system:kube-scheduler" client
  cert "$d" node "/O=system:nodes/CN=system:node:$NODE_NAME" client
  cert "$d" kube-proxy "/CN=system:kube-proxy" client
  cert "$d" coredns "/CN=devicestreams-node:coredns" client
}

cert() { # cert <dir> <name> <subject> server|client [subjectAltName]
  local d="$1" name="$2" subj="$3" usage="$4" san="${5:-}"
  local ext="$d/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ "$usage" = server ]; then echo "extendedKeyUsage=serverAuth"; else echo "extendedKeyUsage=clientAuth"; fi
    [ -z "$san" ] || echo "subjectAltName=$san"
  } >"$ext"
  (
    cd "$d"
    umask 077
    openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile "$ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$ext"
  )
}

kubeconfig() { # kubeconfig <pki dir> <cert name> <server> > file
  local d="$1" name="$2" server="$3"
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: devicestreams-node
  cluster:
    server: $server
    certificate-authority: $d/ca.crt
users:
- name: $name
  user:
    client-certificate: $d/$name.crt
    client-key: $d/$name.key
contexts:
- name: devicestreams-node
  context: {cluster: devicestreams-node, user: $name}
current-context: devicestreams-node
KC
}
