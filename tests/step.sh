#!/usr/bin/env bash
# One step of `make test` (tests/test.mk), timed and logged, so that steps run side by side stay
# readable: the output goes to target/test/logs/STEP.log, a line says when it starts and how it
# ended, and a failing step prints its log's last lines.
#
#   tests/step.sh STEP COMMAND [ARG...]   run one step
#   tests/step.sh --suite STEP COMMAND...  run one step once one of SUITE_SLOTS (default 3) places
#                                         for suites is free: make runs every ready step at once,
#                                         so the test beds' builds never wait behind suites
#   tests/step.sh --begin                 a new run: forgets the steps and logs of the last one
#   tests/step.sh --table                 the timing table of every step run, and the tests counted
#                                         in the suites' logs; exits 1 when a step failed
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$repo/target/test"
mkdir -p "$dir/logs" "$dir/steps"

table() {
  local name start end status total passed=0 failed=0 bad step log in_log failed_in_log began
  began="$(cat "$dir/started")"
  printf '\n%-28s %8s %8s %8s  %s\n' step start end seconds result
  for step in "$dir"/steps/*; do
    [[ -e "$step" ]] || continue
    read -r name start end status <"$step"
    [[ -z "$end" ]] && end="$start" status=running
    printf '%-28s %8s %8s %8s  %s\n' "$name" "+$((start - began))" "+$((end - began))" "$((end - start))" "$status"
  done | sort -t+ -k2 -n
  for log in "$dir"/logs/*.log; do
    [[ -e "$log" ]] || continue
    # cargo's closing line per test binary: "test result: ok. 12 passed; 0 failed; ..."
    read -r in_log failed_in_log < <(awk '/^test result: /{ p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
    passed=$((passed + in_log)) failed=$((failed + failed_in_log))
  done
  total="$(($(date +%s) - began))"
  bad="$(grep -L ' ok$' "$dir"/steps/* | wc -l)"
  printf '%-28s %8s %8s %8s\n' "make test" +0 "+$total" "$total"
  echo "tests: $passed passed, $failed failed"
  ((bad == 0 && failed == 0))
}

if [[ "${1:-}" == --table ]]; then table; exit; fi
if [[ "${1:-}" == --begin ]]; then
  rm -rf "$dir/logs" "$dir/steps" "$dir/waiting" "$dir/tickets"
  mkdir -p "$dir/logs" "$dir/steps"
  date +%s >"$dir/started"
  exit 0
fi
[[ -f "$dir/started" ]] || date +%s >"$dir/started"

# Holds one of the suites' places on fd 8 until the step ends (its command does not inherit it).
# Places go in the order steps asked for them (make starts them in its list's order): each waiting
# step holds a ticket, and only the lowest ticket may take a free place.
take_a_suite_place() {
  local ticket i
  mkdir -p "$dir/waiting"
  exec 9>"$dir/places.lock"
  flock 9
  ticket=$(($(cat "$dir/tickets" 2>/dev/null || echo 0) + 1))
  echo "$ticket" >"$dir/tickets"
  touch "$dir/waiting/$ticket"
  flock -u 9
  while :; do
    flock 9
    if [[ "$(ls "$dir/waiting" | sort -n | head -1)" == "$ticket" ]]; then
      for ((i = 0; i < ${SUITE_SLOTS:-3}; i++)); do
        exec 8>"$dir/place.$i"
        if flock -n 8; then
          rm -f "$dir/waiting/$ticket"
          flock -u 9
          exec 9>&-
          return
        fi
      done
    fi
    flock -u 9
    sleep 1
  done
}

if [[ "${1:-}" == --suite ]]; then shift; take_a_suite_place; fi
name="${1:?usage: step.sh [--suite] STEP COMMAND [ARG...] | --table}"
shift
log="$dir/logs/$name.log"
start="$(date +%s)"
echo "$name $start" >"$dir/steps/$name"
echo "[+$((start - $(cat "$dir/started")))s] $name: started" >&2
"$@" >"$log" 2>&1 </dev/null 8>&-
rc=$?
end="$(date +%s)"
result=ok
((rc == 0)) || result="failed($rc)"
echo "$name $start $end $result" >"$dir/steps/$name"
echo "[+$((end - $(cat "$dir/started")))s] $name: $result in $((end - start))s" >&2
if ((rc != 0)); then
  # What panicked first (a long panic message can push it out of the tail), then the tail.
  echo "---- panics in $log" >&2
  grep -A4 'panicked at' "$log" | head -n 40 >&2
  echo "---- last lines of $log" >&2
  tail -n 60 "$log" >&2
  echo "----" >&2
fi
exit "$rc"
