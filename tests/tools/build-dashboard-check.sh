#!/usr/bin/env bash
# Builds tests/monitoring/dashboard-check (a Grafana dashboard checked against Grafana's schema with
# the Grafana Foundation SDK, its PromQL parsed by Prometheus' parser) into the cache that
# build-helm.sh uses, once per content of its sources. Prints the binary's path.
set -euo pipefail
source "$(dirname "$0")/build-once.sh"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
src="$repo/tests/monitoring/dashboard-check"
# A change to the checker or to its pinned modules builds a new binary.
key="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)"
bin="$cache/tools/dashboard-check-$key"

build() {
  local start tmp
  start=$(date +%s)
  tmp="$(mktemp -d "$cache/tools/.dashboard-check-build.XXXXXX")"
  (cd "$src" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/dashboard-check" .)
  mkdir -p "$bin"
  mv "$tmp/dashboard-check" "$bin/dashboard-check"
  rmdir "$tmp"
  echo "built dashboard-check in $(( $(date +%s) - start ))s" >&2
}

build_once dashboard-check "$bin/dashboard-check"
