#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kubectl (with WITH_NODE=1 also
# kube-scheduler, kubelet and kube-proxy) from their published Go modules,
# once per version, into a cache outside the repository. Prints the directory holding the binaries.
#
# K8S_MINOR (1.33, 1.34, 1.37) selects the Kubernetes version. Unset, it is the oldest supported one,
# 1.33, which the suites run on (the matrix adds the newest): every control plane built costs minutes
# on a cold machine. versions/v<K8S_MINOR>/go.mod and go.sum pin each version; 1.34 is ./go.mod's.
# The cmd/ wrappers are shared: another version is built in a scratch module under the cache, cmd/
# with versions/v<K8S_MINOR>/cmd/ laid over it (only where an upstream API differs) and that
# version's go.mod and go.sum. To make or refresh such a go.sum, run
# `go mod tidy` in the same kind of scratch directory and copy go.mod and go.sum back.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${EIPSEG_CACHE:-$HOME/.cache/eipsegment-operator}"
K8S_MINOR="${K8S_MINOR:-1.33}"
mod="$here" src="$here" # where that version's go.mod is, and the module directory go builds in
if [[ "$K8S_MINOR" != 1.34 ]]; then
  mod="$here/versions/v$K8S_MINOR" src="$cache/controlplane/src-v$K8S_MINOR"
  [[ -f "$mod/go.mod" ]] ||
    { echo "build.sh: no Kubernetes $K8S_MINOR here (K8S_MINOR is one of 1.34 $(cd "$here/versions" && ls -d v* | sed 's/^v//' | xargs))" >&2; exit 1; }
fi
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2}' "$mod/go.mod" | head -1)"
[[ "$k8s_version" == "v$K8S_MINOR".* ]] ||
  { echo "build.sh: K8S_MINOR=$K8S_MINOR but $mod/go.mod pins k8s.io/kubernetes $k8s_version" >&2; exit 1; }
# (the etcd module's go.mod names it on a one-line `require`, so skip that word when present)
etcd_version="$(awk '{ if ($1 == "require") { $1 = "" ; $0 = $0 } } $1=="go.etcd.io/etcd/server/v3"{print $2}' "$here/etcd/go.mod" | head -1)"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || { echo "build.sh: cannot read versions from go.mod files" >&2; exit 1; }
bin="$cache/controlplane/k8s-$k8s_version-etcd-$etcd_version"
export GOMODCACHE="${GOMODCACHE:-$cache/go/mod}" GOCACHE="${GOCACHE:-$cache/go/build}" GOFLAGS=-mod=mod
want=(etcd kube-apiserver kubectl)
[[ "${WITH_CONTROLLER_MANAGER:-1}" == 1 ]] && want+=(kube-controller-manager)
[[ "${WITH_NODE:-0}" == 1 ]] && want+=(kube-scheduler kubelet kube-proxy)
missing=()
for b in "${want[@]}"; do [[ -x "$bin/$b" ]] || missing+=("$b"); done
if ((${#missing[@]})); then
  mkdir -p "$bin"
  if [[ "$src" != "$here" ]]; then # a fresh scratch module: nothing left over from an earlier build
    rm -rf "$src" && mkdir -p "$src"
    cp -r "$here/cmd" "$mod/go.mod" "$mod/go.sum" "$src/"
    [[ ! -d "$mod/cmd" ]] || cp -r "$mod/cmd" "$src/"
  fi
  minor="${k8s_version#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  start=$(date +%s) kube=() etcd_pid=""
  for b in "${missing[@]}"; do [[ "$b" == etcd ]] || kube+=("./cmd/$b"); done
  rm -rf "$bin/.new" && mkdir -p "$bin/.new"
  # etcd (its own module) beside one go build of every Kubernetes binary: shared packages compile
  # once and the links run side by side.
  if [[ " ${missing[*]} " == *" etcd "* ]]; then
    (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/.new/etcd" .) &
    etcd_pid=$!
  fi
  if ((${#kube[@]})); then (cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$bin/.new/" "${kube[@]}"); fi
  [[ -z "$etcd_pid" ]] || wait "$etcd_pid"
  for b in "${missing[@]}"; do mv "$bin/.new/$b" "$bin/$b"; done
  rmdir "$bin/.new"
  echo "built ${missing[*]} (Kubernetes $k8s_version, etcd $etcd_version) in $(( $(date +%s) - start ))s" >&2
fi
# The node's helpers: crictl (sandbox cleanup through CRI) and the pause image.
if [[ "${WITH_NODE:-0}" == 1 ]]; then
  crictl_version=v1.34.0
  if [[ ! -x "$bin/crictl" ]]; then
    GOBIN="$bin/.crictl" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$crictl_version"
    mv "$bin/.crictl/crictl" "$bin/crictl" && rmdir "$bin/.crictl"
    echo "built crictl $crictl_version" >&2
  fi
  if [[ ! -s "$bin/pause-image.tar" ]]; then
    work="$(mktemp -d)"
    (cd "$here/../node/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/pause" .)
    storage=(--root "$cache/image-storage/root" --runroot "$cache/image-storage/run" --storage-driver vfs)
    ctr="$(buildah "${storage[@]}" from --quiet scratch)"
    buildah "${storage[@]}" copy --quiet "$ctr" "$work/pause" /pause >/dev/null
    buildah "${storage[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
    buildah "${storage[@]}" commit --quiet --rm "$ctr" localhost/eipsegment-pause:1 >/dev/null
    buildah "${storage[@]}" push --quiet localhost/eipsegment-pause:1 "docker-archive:$bin/pause-image.tar.tmp:localhost/eipsegment-pause:1"
    mv "$bin/pause-image.tar.tmp" "$bin/pause-image.tar"
    rm -rf "$work"
    echo "built the pause image" >&2
  fi
fi
echo "$bin"
