#!/usr/bin/env bash
# make demo: the canary walk-through on the embedded cluster.
#
# Starts ramp-sim, installs the CRDs (ramp's and Istio's), starts ramp-operator
# as a local process with URL webhooks, applies examples/canary-istio/, changes
# the Deployment and walks the steps with `kubectl ramp approve`, printing the
# status tree, the VirtualService's http section and routed samples at each step.
# KEEP=1 leaves the cluster and the operator running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${RAMP_BIN_DIR:-$ROOT/target/debug}
SHARED_CRDS=${RAMP_SHARED_CRDS:-$ROOT/../shared/crds}
KEEP=${KEEP:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ramp-demo.XXXXXX")
export KUBECONFIG=$WORK/kubeconfig
export KUBECACHEDIR=$WORK/kube-cache
export PATH=$BIN:$PATH
export NO_COLOR=${NO_COLOR:-1}
NS=default
RO=rollouts-demo

DEMO=demo
keep_hint() {
  echo "The cluster and the operator keep running (KEEP=1). Explore with:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl get rollouts,deployments,services,virtualservices"
  echo "  kubectl ramp dashboard     # the rollouts live in the browser: http://127.0.0.1:3100/"
}
# shellcheck source=scripts/demo-lib.sh
source "$ROOT/scripts/demo-lib.sh"
phase_is() { [ "$(kubectl get rollout $RO -o jsonpath='{.status.phase}')" = "$1" ]; }
at_step() { [ "$(kubectl get rollout $RO -o jsonpath='{.status.canaryStatus.currentStepIndex}/{.status.canaryStatus.currentStepState}')" = "$1/$2" ]; }
show() {
  kubectl ramp status $RO
  echo "--- VirtualService vs-demo .spec.http"
  kubectl get virtualservice vs-demo -o jsonpath='{.spec.http}'; echo
  echo "--- where 200 requests go, by pod-template-hash (ramp-sim route through simple-gateway)"
  echo "with header 'version: canary':"
  ramp-sim route -n $NS --gateway simple-gateway --host service-demo -H 'version: canary' --requests 200 -o table \
    | sed -n '/^POD-TEMPLATE-HASH/,/^$/p'
  echo "without:"
  ramp-sim route -n $NS --gateway simple-gateway --host service-demo --requests 200 -o table \
    | sed -n '/^POD-TEMPLATE-HASH/,/^$/p'
}

step "Starting the embedded cluster (ramp-sim)"
"$BIN/ramp-sim" serve --listen 127.0.0.1:0 --kubeconfig "$KUBECONFIG" --crds "$SHARED_CRDS" >"$WORK/sim.log" 2>&1 &
pids+=($!)
wait_for "the API server is up" 20 kubectl get --raw /version
kubectl version | grep Server

step "Installing the Rollout CRD"
kubectl apply --server-side -f charts/ramp/crds/
kubectl wait --for=condition=Established crd/rollouts.rollouts.ramp.dev
kubectl create namespace ramp-system

step "Starting ramp-operator (local process, URL webhooks)"
"$BIN/ramp-operator" run --operator-namespace ramp-system --metrics-listen 127.0.0.1:0 \
  --webhook-listen 127.0.0.1:0 --webhook-url https://127.0.0.1:0 >"$WORK/operator.log" 2>&1 &
pids+=($!)
wait_for "the operator registered its webhooks" 30 kubectl get mutatingwebhookconfiguration ramp

step "Applying examples/canary-istio (Deployment, Service, VirtualService, Rollout)"
kubectl apply -f examples/canary-istio/
wait_for "the rollout is Healthy" 60 phase_is Healthy
wait_for "workload-demo is ready" 60 kubectl rollout status deployment/workload-demo --timeout=1s
show

step "Changing the Deployment (env version=canary): ramp pauses it and starts a canary"
kubectl set env deployment/workload-demo version=canary
wait_for "step 1 is paused" 60 at_step 1 StepPaused
show

for n in 1 2; do
  step "Approving step $n"
  kubectl ramp approve $RO
  wait_for "step $((n + 1)) is paused" 60 at_step $((n + 1)) StepPaused
  show
done

step "Approving step 3: ramp restores the VirtualService and finishes the Deployment"
kubectl ramp approve $RO
wait_for "the rollout is Healthy" 90 phase_is Healthy
show
echo "--- VirtualService vs-demo as restored"
kubectl get virtualservice vs-demo -o yaml | sed -n '/^spec:/,$p'
kubectl get deployments,services
step "Done: the canary walk-through finished"
echo "See it in the browser: make demo KEEP=1, then kubectl ramp dashboard (with the KUBECONFIG it prints)."
