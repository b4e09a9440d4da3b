#!/usr/bin/env bash
# The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule, ...) that the chart's optional
# objects need on a cluster, from the published Go module's example/prometheus-operator-crd/,
# downloaded once into the Go module cache that build-helm.sh uses. Prints that directory.
set -euo pipefail
module=github.com/prometheus-operator/prometheus-operator
version=v0.85.0
cache="${EIPSEG_CACHE:-$HOME/.cache/eipsegment-operator}"
export GOMODCACHE="${GOMODCACHE:-$cache/go/mod}" GOCACHE="${GOCACHE:-$cache/go/build}"
# The module cache is shared and read-only once written; go mod download is a no-op when present.
dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
crds="$dir/example/prometheus-operator-crd"
[[ -f "$crds/monitoring.coreos.com_prometheusrules.yaml" ]] \
  || { echo "prometheus-operator-crds.sh: no CRDs in $crds" >&2; exit 1; }
echo "$crds"
