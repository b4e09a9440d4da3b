#!/usr/bin/env bash
# The operator's main job on the built-in defaults: a local control plane, the VPC simulator and the
# operator; create a segment, see it Ready, delete it, see the release confirmed; tear down.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$repo/target/demo"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "building the operator and the simulator"
cargo build --quiet --manifest-path "$repo/Cargo.toml" --workspace --bins
# (for the target `make demo` names, so that it shares `make test`'s build)
bin="$repo/target/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}debug"
"$repo/tests/controlplane/cluster.sh" down "$dir/cluster" >/dev/null 2>&1 || true
mkdir -p "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$repo/tests/controlplane/cluster.sh" down "$dir/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "starting etcd + kube-apiserver (first run builds them from source: ~10 minutes)"
CLUSTER_OWNER_PID=$$ "$repo/tests/controlplane/cluster.sh" up "$dir/cluster"
set -a; source "$dir/cluster/cluster.env"; set +a
k() { "$KUBECTL" "$@"; }

say "starting the VPC simulator"
"$bin/vpc-simulator" --listen 127.0.0.1:0 --allocate-seconds 3 --release-seconds 5 > "$dir/simulator.out" 2> "$dir/simulator.log" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$dir/simulator.out" 2>/dev/null && break; sleep 0.1; done
sim="$(awk '/listening/{print $NF}' "$dir/simulator.out")"
echo "simulator at $sim (credentials: the documented simulator pair)"

say "starting the operator under its own least-privilege identity"
KUBECONFIG="$OPERATOR_KUBECONFIG" \
ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI5tSimulatorDefaultKey ALIBABA_CLOUD_ACCESS_KEY_SECRET=SimulatorDefaultSecretNotForProduction \
  "$bin/eipsegment-operator" run --vpc-endpoint "$sim" --sts-endpoint "$sim" --allow-insecure-endpoint --poll-seconds 1 \
  > "$dir/operator.log" 2>&1 &
pids+=($!)

say "kubectl apply -f deploy/examples/eipsegment.yaml"
k apply -f "$repo/deploy/examples/eipsegment.yaml"
"$KUBECTL" get eipseg -A -w --output-watch-events & watch=$!
for _ in $(seq 60); do
  [[ "$(k get eipseg web-frontend -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] && break
  sleep 1
done
kill $watch 2>/dev/null || true; wait $watch 2>/dev/null || true
say "Ready:"
k get eipseg web-frontend -o wide
say "the simulator's view (the cloud)"
curl -s "$sim/__admin/state" | python3 -c 'import json,sys
for s in json.load(sys.stdin)["segments"]:
    print("  %s  %s  %s  %d member EIPs" % (s["instanceId"], s["segment"], s["status"], len(s["members"])))'

say "kubectl delete eipsegment web-frontend   (blocks until the cloud confirms the release)"
"$KUBECTL" get eipseg -A -w --output-watch-events & watch=$!
start=$(date +%s)
k delete eipsegment web-frontend --timeout=120s
kill $watch 2>/dev/null || true; wait $watch 2>/dev/null || true
echo "delete returned after $(( $(date +%s) - start ))s"
say "events"
k get events.events.k8s.io -o custom-columns=TYPE:.type,REASON:.reason,NOTE:.note --sort-by=.metadata.creationTimestamp
say "the simulator's view after the delete"
left="$(curl -s "$sim/__admin/state" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["segments"]))')"
echo "segments left in the cloud: $left"
echo "cloud calls: $(curl -s "$sim/__admin/counters")"
[[ "$left" == 0 ]] || { echo "demo failed: the segment was not released" >&2; exit 1; }
say "done: allocated, Ready, released exactly once, object gone; tearing down"
