#!/usr/bin/env bash
# Builds helm from its published Go module, once per version, into a cache outside the repository.
# Prints the path of the binary.
set -euo pipefail
version=v3.22.0
# The Kubernetes version helm assumes without a cluster: that of the client-go it is built with.
k8s_major=1 k8s_minor=37
cache="${EIPSEG_CACHE:-$HOME/.cache/eipsegment-operator}"
bin="$cache/tools/helm-$version-k8s-$k8s_major.$k8s_minor"
if [[ ! -x "$bin/helm" ]]; then
  export GOMODCACHE="${GOMODCACHE:-$cache/go/mod}" GOCACHE="${GOCACHE:-$cache/go/build}"
  start=$(date +%s)
  mkdir -p "$bin"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=$k8s_major -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  GOBIN="$bin" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$version"
  echo "built helm $version in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin/helm"
