#!/usr/bin/env bash
# One step of `make test` (tests/test.mk), timed and logged, so that steps run side by side stay
# readable: the output goes to target/test/logs/STEP.log, a line says when it starts and how it
# ended, and a failing step prints its log's last lines.
#
#   tests/step.sh STEP COMMAND [ARG...]   run one step
#   tests/step.sh --table                 the timing table of every step run, and the tests counted
#                                         in the suites' logs; exits 1 when a step failed
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$repo/target/test"
mkdir -p "$dir/logs" "$dir/steps"

table() {
  local name start end status total passed=0 failed=0 bad p f
  printf '\n%-28s %8s %8s %8s  %s\n' step start end seconds result
  for f in "$dir"/steps/*; do
    [[ -e "$f" ]] || continue
    read -r name start end status <"$f"
    [[ -z "$end" ]] && end="$start" status=running
    printf '%-28s %8s %8s %8s  %s\n' "$name" "+$((start - $(cat "$dir/started")))" \
      "+$((end - $(cat "$dir/started")))" "$((end - start))" "$status"
  done | sort -t+ -k2 -n
  for f in "$dir"/logs/*.log; do
    [[ -e "$f" ]] || continue
    # cargo's closing line per test binary: "test result: ok. 12 passed; 0 failed; ..."
    read -r p f < <(awk '/^test result: /{ p += $4; f += $6 } END { print p + 0, f + 0 }' "$f")
    passed=$((passed + p)) failed=$((failed + f))
  done
  total="$(($(date +%s) - $(cat "$dir/started")))"
  bad="$(grep -L ' ok$' "$dir"/steps/* | wc -l)"
  printf '%-28s %8s %8s %8s\n' "make test" +0 "+$total" "$total"
  echo "tests: $passed passed, $failed failed"
  ((bad == 0 && failed == 0))
}

if [[ "${1:-}" == --table ]]; then table; exit; fi
if [[ "${1:-}" == --begin ]]; then rm -rf "$dir/logs" "$dir/steps"; mkdir -p "$dir/logs" "$dir/steps"; date +%s >"$dir/started"; exit 0; fi
[[ -f "$dir/started" ]] || date +%s >"$dir/started"

name="${1:?usage: step.sh STEP COMMAND [ARG...] | --table}"
shift
log="$dir/logs/$name.log"
start="$(date +%s)"
echo "$name $start" >"$dir/steps/$name"
echo "[+$((start - $(cat "$dir/started")))s] $name: started" >&2
"$@" >"$log" 2>&1 </dev/null
rc=$?
end="$(date +%s)"
result=ok
((rc == 0)) || result="failed($rc)"
echo "$name $start $end $result" >"$dir/steps/$name"
echo "[+$((end - $(cat "$dir/started")))s] $name: $result in $((end - start))s" >&2
if ((rc != 0)); then
  echo "---- last lines of $log" >&2
  tail -n 60 "$log" >&2
  echo "----" >&2
fi
exit "$rc"
