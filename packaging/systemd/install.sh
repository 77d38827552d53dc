#!/bin/sh
# Installs the single-file agent as a systemd service on a Linux device without Kubernetes:
#
#   sudo ./install.sh --hub HOST:PORT --device NAMESPACE/NAME --hub-ca hub-ca.crt \
#     --enrollment-token token.txt --allow ssh=127.0.0.1:22 [--allow NAME=HOST:PORT ...]
#
# The hub's CA is the operator CA's tls.crt; the token comes from the Secret the Device's
# status.enrollment names (docs/bare-linux.md). The binary and the unit are taken from this
# script's folder (the release archive's layout) unless --binary names the binary.
# --root DIR installs into DIR instead of / and starts nothing (images, tests).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary="$here/devicestreams-agent"
unit="$here/devicestreams-agent.service"
root=/
hub=
device=
hub_ca=
token=
allow=

fail() {
  echo "install.sh: $*" >&2
  exit 2
}
need_value() {
  [ $# -ge 2 ] && [ -n "$2" ] || fail "$1 needs a value (./install.sh --help)"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --hub) need_value "$@"; hub=$2; shift 2 ;;
    --device) need_value "$@"; device=$2; shift 2 ;;
    --hub-ca) need_value "$@"; hub_ca=$2; shift 2 ;;
    --enrollment-token) need_value "$@"; token=$2; shift 2 ;;
    --allow) need_value "$@"; allow="${allow:+$allow,}$2"; shift 2 ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --root) need_value "$@"; root=$2; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument $1 (./install.sh --help)" ;;
  esac
done

[ -n "$hub" ] || fail "--hub HOST:PORT is required: the hub's address as this device reaches it"
case "$device" in
  */*) ;;
  *) fail "--device NAMESPACE/NAME is required: the Device object this box is (got \"$device\")" ;;
esac
[ -r "$hub_ca" ] || fail "--hub-ca FILE is required and must be readable: the operator CA's tls.crt (got \"$hub_ca\")"
[ -r "$token" ] || fail "--enrollment-token FILE is required and must be readable: the Device's one-time token (got \"$token\")"
[ -n "$allow" ] || fail "give at least one --allow NAME=HOST:PORT: the only services streams may reach"
[ -x "$binary" ] || fail "$binary is not an executable: pass --binary PATH to the devicestreams-agent binary"
[ -r "$unit" ] || fail "$unit is missing: run install.sh from the release archive's folder"
"$binary" --version >/dev/null || fail "$binary does not run on this machine (wrong architecture?)"

etc="$root/etc/devicestreams"
install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$etc"
install -m 0755 "$binary" "$root/usr/local/bin/devicestreams-agent"
install -m 0644 "$unit" "$root/etc/systemd/system/devicestreams-agent.service"
install -m 0644 "$hub_ca" "$etc/hub-ca.crt"
# Root-only: systemd hands it to the service as a credential (LoadCredential=).
install -m 0600 "$token" "$etc/enrollment-token"
umask 022
cat >"$etc/agent.env" <<ENV
# devicestreams-agent's flags as DEVICESTREAMS_AGENT_<FLAG> (devicestreams-agent --help);
# restart the service after a change: systemctl restart devicestreams-agent
DEVICESTREAMS_AGENT_HUB=$hub
DEVICESTREAMS_AGENT_DEVICE=$device
DEVICESTREAMS_AGENT_ALLOW=$allow
ENV

if [ "$root" != / ]; then
  echo "installed into $root; not started"
  exit 0
fi
if [ ! -d /run/systemd/system ]; then
  echo "installed; systemd is not running here, so start it by hand: systemctl enable --now devicestreams-agent"
  exit 0
fi
systemctl daemon-reload
systemctl enable --now devicestreams-agent.service
echo "devicestreams-agent started: journalctl -u devicestreams-agent -f; the Device shows connected once it enrols"
