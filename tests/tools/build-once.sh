# Sourced by the tools' build scripts. It sets $cache, the project's cache outside the repository
# (EIPSEG_CACHE overrides it), and Go's module and build caches under it, shared by every Go build
# of the test beds. `build_once NAME PATH` runs the script's `build` function unless PATH (the
# executable it makes) is there, then prints PATH. Tests may call a build script concurrently: one
# builds under the lock $cache/tools/.NAME.lock, the others wait and find it.
cache="${EIPSEG_CACHE:-$HOME/.cache/eipsegment-operator}"
export GOMODCACHE="${GOMODCACHE:-$cache/go/mod}" GOCACHE="${GOCACHE:-$cache/go/build}"

build_once() {
  local name="$1" result="$2"
  if [[ ! -x "$result" ]]; then
    mkdir -p "$cache/tools"
    exec 9>"$cache/tools/.$name.lock"
    flock 9
    [[ -x "$result" ]] || build
    exec 9>&-
  fi
  echo "$result"
}
