#!/usr/bin/env bash
# Builds Argo CD (the application controller and the repo server: one multi-call binary) from its
# published Go modules, once per version, into a cache outside the repository, beside the files a
# test bed needs from the same release: its CRDs and the repo server's git wrapper scripts (upstream's
# image puts them on PATH). Prints the directory.
#
# The argo-cd/v3 module's zip leaves out its nested gitops-engine module, which its go.mod replaces
# with ./gitops-engine: the build runs in a scratch copy with that module's own download put there,
# and upstream's go.sum, unchanged, checks every other download. Argo CD needs Go 1.27.
set -euo pipefail
source "$(dirname "$0")/build-once.sh"
version=v3.6.1
out="$cache/tools/argocd-$version"
export GOTOOLCHAIN=go1.27.3 GOFLAGS=-buildvcs=false

module_dir() {
  go mod download -json "$1@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

build() {
  local start src engine scratch
  start=$(date +%s)
  src="$(module_dir github.com/argoproj/argo-cd/v3)"
  engine="$(module_dir github.com/argoproj/argo-cd/gitops-engine/v3)"
  [[ -d "$src" && -d "$engine" ]] || { echo "build-argocd.sh: cannot download argo-cd $version" >&2; exit 1; }
  scratch="$(mktemp -d "$cache/tools/.argocd-build.XXXXXX")"
  # Module files are read-only; the trap runs after this function's locals are gone.
  trap "chmod -R u+w '$scratch' 2>/dev/null; rm -rf '$scratch'" EXIT
  cp -r "$src" "$scratch/src"
  chmod -R u+w "$scratch/src"
  cp -r "$engine" "$scratch/src/gitops-engine"
  chmod -R u+w "$scratch/src/gitops-engine"
  # Upstream builds it static with cgo off (its Makefile's CGO_FLAG=0), and stamps the version.
  (cd "$scratch/src" && CGO_ENABLED=0 go build -trimpath -mod=readonly \
    -ldflags "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${version#v}" -o "$scratch/argocd" ./cmd)
  cmp -s "$src/go.sum" "$scratch/src/go.sum" || { echo "build-argocd.sh: the build changed go.sum" >&2; exit 1; }
  mkdir -p "$scratch/out/crds"
  mv "$scratch/argocd" "$scratch/out/argocd"
  cp "$src/hack/git-verify-wrapper.sh" "$src/hack/gpg-wrapper.sh" "$scratch/out/"
  cp "$src/manifests/crds/application-crd.yaml" "$src/manifests/crds/appproject-crd.yaml" "$scratch/out/crds/"
  chmod -R u+w "$scratch/out"
  chmod +x "$scratch/out/"*.sh
  rm -rf "$out"
  mv "$scratch/out" "$out"
  echo "built argocd $version in $(( $(date +%s) - start ))s" >&2
}

# The directory is printed: the binary and what the test bed needs beside it.
build_once argocd "$out/argocd" >/dev/null
echo "$out"
