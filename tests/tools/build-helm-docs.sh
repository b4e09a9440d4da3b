#!/usr/bin/env bash
# Builds helm-docs (the chart README's generator, github.com/norwoodj/helm-docs) from its published Go
# module, once per version, into a cache outside the repository (like build-helm.sh, sharing its Go
# module and build caches). Prints the binary's path.
set -euo pipefail
source "$(dirname "$0")/build-once.sh"
version=v1.14.2
bin="$cache/tools/helm-docs-$version"

build() {
  local start tmp
  start=$(date +%s)
  tmp="$(mktemp -d "$cache/tools/.helm-docs-build.XXXXXX")"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "github.com/norwoodj/helm-docs/cmd/helm-docs@$version"
  mkdir -p "$bin"
  mv "$tmp/helm-docs" "$bin/helm-docs"
  rmdir "$tmp"
  echo "built helm-docs $version in $(( $(date +%s) - start ))s" >&2
}

build_once helm-docs "$bin/helm-docs"
