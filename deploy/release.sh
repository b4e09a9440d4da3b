#!/usr/bin/env bash
# Makes a release's artifacts under target/release-artifacts/ (never committed):
#   eipsegment-operator-<version>.tgz          the chart, its version, appVersion and image tag stamped
#   eipsegment-operator-<version>.oci.tar      the operator's image as an OCI layout archive
#   SHA256SUMS                                 the checksums of both
#
#   deploy/release.sh [--version X.Y.Z] [--builder buildah|podman|docker] [--out DIR] [--skip-image]
#
# --version defaults to Cargo.toml's. The chart in the repository is left as it is: a copy is
# stamped and packaged (helm package). --skip-image packages the chart alone (the image build
# needs a builder and takes minutes). HELM names a helm binary; else tests/tools/build-helm.sh's.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)"
builder=buildah out="$repo/target/release-artifacts" image=1
while (($#)); do
  case "$1" in
    --version) version="${2:?}"; shift ;;
    --builder) builder="${2:?}"; shift ;;
    --out) out="$(realpath -m -- "${2:?}")"; shift ;;
    --skip-image) image=0 ;;
    *) sed -n '7s/^# */usage: /p' "$0" >&2; exit 2 ;;
  esac
  shift
done
# SemVer 2, as helm requires of a chart version (no leading v: the image tag is the same string).
semver='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'
[[ "$version" =~ $semver ]] || { echo "release.sh: version '$version' is not SemVer (X.Y.Z)" >&2; exit 2; }
helm="${HELM:-$("$repo/tests/tools/build-helm.sh")}"

# Only what a release writes is replaced: --out may name a directory that holds other files.
rm -rf "$out/stage" "$out"/eipsegment-operator-*.tgz "$out"/eipsegment-operator-*.oci.tar "$out/SHA256SUMS"
mkdir -p "$out/stage"
started=$SECONDS

# The chart: a copy whose image tag is the release's (an image tag may not hold '+').
cp -r "$repo/charts/eipsegment-operator" "$out/stage/"
tag="${version//+/_}"
sed -i "s/^  tag: \"\"$/  tag: \"$tag\"/" "$out/stage/eipsegment-operator/values.yaml"
grep -q "^  tag: \"$tag\"$" "$out/stage/eipsegment-operator/values.yaml" ||
  { echo "release.sh: could not stamp image.tag in values.yaml" >&2; exit 1; }
"$helm" lint --strict "$out/stage/eipsegment-operator" --set image.repository=registry.example.com/eipsegment-operator >/dev/null
"$helm" package "$out/stage/eipsegment-operator" --version "$version" --app-version "$version" -d "$out" >/dev/null
rm -rf "$out/stage"

if ((image)); then
  "$repo/deploy/build-image.sh" --builder "$builder" --tag "eipsegment-operator:$tag" \
    --oci-archive "$out/eipsegment-operator-$version.oci.tar"
fi
shopt -s nullglob
cd "$out"
sha256sum -- *.tgz *.tar >SHA256SUMS
echo "release $version in $out after $((SECONDS - started)) s:" >&2
ls -l --block-size=K -- *.tgz *.tar >&2
