#!/usr/bin/env bash
# Renders deploy/ from the chart with its default values, so that plain manifests and the chart
# never drift apart (tests/chart.rs fails when deploy/ is stale). Usage: render-deploy.sh [OUT_DIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$repo/deploy}"
helm="$("$repo/tests/tools/build-helm.sh")"
chart="$repo/charts/eipsegment-operator"
header="# Rendered from charts/eipsegment-operator by tests/tools/render-deploy.sh; do not edit."
# The placeholder image is allowed here: deploy/ is a base whose image an overlay sets (kustomize
# `images:`), and the test control plane runs the operator on the host.
placeholder=(--set image.allowPlaceholder=true)
mkdir -p "$out/rbac"
{
  echo "$header"
  "$helm" template eipsegment-operator "$chart" --namespace eipsegment-system --include-crds "${placeholder[@]}"
} > "$out/eipsegment-operator.yaml"
{
  echo "$header"
  echo "# The operator's ServiceAccount and least-privilege RBAC alone (the test control plane uses it)."
  "$helm" template eipsegment-operator "$chart" --namespace eipsegment-system "${placeholder[@]}" \
    --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml
} > "$out/rbac/operator.yaml"
