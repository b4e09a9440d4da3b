#!/usr/bin/env bash
# Installs what the node, the image build and the Argo CD test bed (Redis) need from Debian's
# packages, when something is missing.
set -euo pipefail
packages=(containerd runc containernetworking-plugins iptables conntrack buildah redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
((EUID == 0)) || { echo "install-packages.sh: installing ${missing[*]} needs root" >&2; exit 1; }
echo "install-packages.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
