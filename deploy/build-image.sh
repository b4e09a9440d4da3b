#!/usr/bin/env bash
# Builds the operator's image from deploy/Dockerfile: first the release binary, statically linked
# (glibc with crt-static: it needs no library at run time, and resolves names from /etc/hosts and
# /etc/resolv.conf), then the context directory, then the image.
#
#   deploy/build-image.sh [--builder buildah|podman|docker] [--tag IMAGE] [--archive FILE] [--oci-archive FILE] [--binary FILE]
#
# --tag defaults to eipsegment-operator:<version in Cargo.toml>, the chart's default image.
# --archive also writes the image as a docker-archive tarball (`ctr images import` reads it);
# --oci-archive as an OCI layout in a tarball (what `make release` ships; skopeo, crane and
# `ctr images import` read it).
# --binary packages an operator binary already built statically (the test build is; `make test`
# uses it) instead of building the release one; it is stripped in the image.
# IMAGE_STORAGE_DIR, with buildah or podman, keeps their storage there (vfs) instead of the
# system's: the node tests keep theirs in the project's cache.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)"
builder=buildah tag="eipsegment-operator:$version" archive="" oci_archive="" prebuilt=""
while (($#)); do
  case "$1" in
    --builder) builder="${2:?}"; shift ;;
    --tag) tag="${2:?}"; shift ;;
    --archive) archive="$(realpath -m -- "${2:?}")"; shift ;;
    --oci-archive) oci_archive="$(realpath -m -- "${2:?}")"; shift ;;
    --binary) prebuilt="$(realpath -- "${2:?}")"; shift ;;
    *) sed -n '6,7s/^# */usage: /p' "$0" >&2; exit 2 ;;
  esac
  shift
done
case "$builder" in buildah | podman | docker) ;; *) echo "build-image.sh: unknown builder '$builder'" >&2; exit 2 ;; esac

if [[ -n "$prebuilt" ]]; then
  binary="$prebuilt"
else
  target="$(rustc -vV | sed -n 's/^host: //p')"
  [[ "$target" == *-linux-gnu ]] || { echo "build-image.sh: needs a *-linux-gnu host (this is $target)" >&2; exit 1; }
  (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --quiet --target "$target" --bin eipsegment-operator)
  binary="$repo/target/$target/release/eipsegment-operator"
fi
if readelf -d "$binary" 2>/dev/null | grep -q '(NEEDED)'; then
  echo "build-image.sh: $binary links shared libraries; the image has none" >&2; exit 1
fi

ctx="$repo/target/image/context"
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/etc/ssl/certs"
cp "$binary" "$ctx/rootfs/eipsegment-operator"
strip --strip-all "$ctx/rootfs/eipsegment-operator"
# The platform verifier reads the system's roots; Debian's bundle is the one the host trusts.
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/rootfs/etc/group"
cp "$repo/deploy/Dockerfile" "$ctx/Dockerfile"

# The name a kubelet asks containerd for: docker.io/library/<name> for a bare name.
normalized() {
  local first="${1%%/*}"
  if [[ "$1" != */* ]]; then echo "docker.io/library/$1"
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then echo "docker.io/$1"
  else echo "$1"; fi
}

storage=()
if [[ -n "${IMAGE_STORAGE_DIR:-}" && "$builder" != docker ]]; then
  storage=(--root "$IMAGE_STORAGE_DIR/root" --runroot "$IMAGE_STORAGE_DIR/run" --storage-driver vfs)
fi
name="$(normalized "$tag")"
case "$builder" in
  buildah) buildah "${storage[@]}" build --quiet --build-arg VERSION="$version" -t "$name" "$ctx" >/dev/null ;;
  podman) podman "${storage[@]}" build --quiet --build-arg VERSION="$version" -t "$name" "$ctx" >/dev/null ;;
  docker) docker build --quiet --build-arg VERSION="$version" -t "$tag" "$ctx" >/dev/null ;;
esac
# Writes the image to FILE as FORMAT (docker-archive or oci-archive).
export_image() {
  local format="$1" file="$2"
  mkdir -p "$(dirname "$file")"
  rm -f "$file"
  case "$builder" in
    buildah) buildah "${storage[@]}" push --quiet "$name" "$format:$file:$name" ;;
    podman) podman "${storage[@]}" save --quiet --format "$format" -o "$file" "$name" ;;
    # Docker 25 and later write an OCI layout (with Docker's manifest beside it) either way.
    docker) docker save -o "$file" "$tag" ;;
  esac
}
if [[ -n "$archive" ]]; then export_image docker-archive "$archive"; fi
if [[ -n "$oci_archive" ]]; then export_image oci-archive "$oci_archive"; fi
echo "built image $name from $binary ($(du -h "$binary" | cut -f1))${archive:+, archive $archive}${oci_archive:+, OCI archive $oci_archive}" >&2
