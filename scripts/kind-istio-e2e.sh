#!/usr/bin/env bash
# Run ramp's e2e scenarios against a real cluster: kind + Istio, on a machine with Docker.
# (The development machines have no Docker, so this script is not run in CI.)
#
# Needs: docker, kind, istioctl, helm, kubectl, cargo.
#   scripts/kind-istio-e2e.sh            # create the cluster, install Istio and ramp, run the suite
#   KEEP=1 scripts/kind-istio-e2e.sh     # leave the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-ramp-e2e}
IMAGE=${IMAGE:-ramp-operator:e2e}
KUBECONFIG_FILE=$(mktemp "${TMPDIR:-/tmp}/ramp-kind-kubeconfig.XXXXXX")

for tool in docker kind istioctl helm kubectl cargo; do
  command -v "$tool" >/dev/null || { echo "kind-istio-e2e: $tool is not installed" >&2; exit 1; }
done

cleanup() {
  if [ -z "${KEEP:-}" ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
  rm -f "$KUBECONFIG_FILE"
}
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
export KUBECONFIG=$KUBECONFIG_FILE
istioctl install -y --set profile=minimal

docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

kubectl apply --server-side -f charts/ramp/crds/
helm install ramp charts/ramp -n ramp-system --create-namespace --wait \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never

cargo build --workspace --bins
# The scenarios' routing assertions use the embedded cluster's mesh (ramp-sim route); against a
# real cluster the object-level assertions (VirtualService shapes, Deployments, status) still hold.
RAMP_E2E_KUBECONFIG=$KUBECONFIG_FILE cargo test -p ramp-e2e -- --test-threads=1
