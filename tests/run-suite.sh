#!/usr/bin/env bash
# Runs one suite's test executable as `cargo test` would (from its package's directory), from the
# list that `make test`'s build step wrote (target/test/executables.tsv).
#
#   tests/run-suite.sh NAME [TEST-ARGS...]   the integration test target NAME
#   tests/run-suite.sh --unit                every crate's unit tests, one after another
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
list="$repo/target/test/executables.tsv"
[[ -s "$list" ]] || { echo "run-suite.sh: no $list: run the build step of tests/test.mk first" >&2; exit 1; }

run() { # PACKAGE_DIR EXECUTABLE [ARGS...]
  local dir="$1" exe="$2"
  shift 2
  echo "== $exe" >&2
  (cd "$dir" && "$exe" "$@")
}

if [[ "${1:-}" == --unit ]]; then
  awk -F'\t' '$2 == "lib" || $2 == "bin"' "$list" | while IFS=$'\t' read -r _ _ dir exe; do run "$dir" "$exe" || exit; done
  exit
fi
name="${1:?usage: run-suite.sh NAME [TEST-ARGS...] | --unit}"
shift
read -r dir exe < <(awk -F'\t' -v n="$name" '$1 == n && $2 == "test" { print $3 "\t" $4 }' "$list") ||
  { echo "run-suite.sh: no test target $name in $list" >&2; exit 1; }
run "$dir" "$exe" "$@"
