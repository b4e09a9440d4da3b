#!/usr/bin/env bash
# Builds helm from its published Go module, once per version, into a cache outside the repository
# (like tests/controlplane/build.sh, sharing its Go module and build caches). Prints the binary's path.
set -euo pipefail
source "$(dirname "$0")/build-once.sh"
version=v3.22.0
bin="$cache/tools/helm-$version"

build() {
  local start gomod client_go major minor ldflags pkg tmp
  start=$(date +%s)
  # Helm's Makefile stamps the Kubernetes version it assumes without a cluster (`helm template`,
  # `helm lint`, a chart's kubeVersion) from the client-go it is built with; do the same.
  gomod="$(go mod download -json "helm.sh/helm/v3@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  client_go="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$gomod")" # v0.MINOR.PATCH
  [[ "$client_go" =~ ^v0\.([0-9]+)\. ]] || { echo "build-helm.sh: no k8s.io/client-go version in $gomod" >&2; exit 1; }
  major=1 minor="${BASH_REMATCH[1]}"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
  done
  tmp="$(mktemp -d "$cache/tools/.helm-build.XXXXXX")"
  GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$version"
  mkdir -p "$bin"
  mv "$tmp/helm" "$bin/helm"
  rmdir "$tmp"
  echo "built helm $version (Kubernetes $major.$minor by default) in $(( $(date +%s) - start ))s" >&2
}

build_once helm "$bin/helm"
