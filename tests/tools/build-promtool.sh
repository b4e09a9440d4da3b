#!/usr/bin/env bash
# Builds promtool (Prometheus' rule checker and rule unit-test runner) from the published Go module
# github.com/prometheus/prometheus, once per version, into the cache that build-helm.sh uses (same Go
# module and build caches). Prints the binary's path.
set -euo pipefail
source "$(dirname "$0")/build-once.sh"
module=github.com/prometheus/prometheus
version=v0.316.0
bin="$cache/tools/promtool-$version-nosd"

build() {
  local start dir release tmp
  start=$(date +%s)
  # The module's v0.3MM.P is Prometheus 3.MM.P, which its VERSION file names: stamp it as the
  # release build does, so `promtool --version` says which rule engine checked the rules.
  dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$dir/VERSION" ]] || { echo "build-promtool.sh: no VERSION in the $module@$version module" >&2; exit 1; }
  release="$(tr -d '[:space:]' < "$dir/VERSION")"
  tmp="$(mktemp -d "$cache/tools/.promtool-build.XXXXXX")"
  # Without the service discovery plugins (Prometheus' own build tag): rules need none of the
  # clouds' SDKs, which are most of a cold build.
  GOBIN="$tmp" go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=$version" \
    "$module/cmd/promtool@$version"
  mkdir -p "$bin"
  mv "$tmp/promtool" "$bin/promtool"
  rmdir "$tmp"
  echo "built promtool $release ($module@$version) in $(( $(date +%s) - start ))s" >&2
}

build_once promtool "$bin/promtool"
