#!/usr/bin/env bash
# make demo-analysis: metric analysis on the embedded cluster, with a real Prometheus.
#
# Starts ramp-sim, a Prometheus scraping it every second, and ramp-operator;
# applies examples/canary-istio/ with a Rollout judged on the built-in metrics
# (success rate >= 99 %, p99 latency <= 500 ms, every 2 s) and keeps 100
# requests/s flowing through the gateway. Then:
#   1. a good canary (40 ms answers) is promoted through three timed steps
#      without any approval;
#   2. a bad canary (30 % of answers 5xx) is aborted at its first step, routing
#      restored, with the measured success rate in the message.
# KEEP=1 leaves everything running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${RAMP_BIN_DIR:-$ROOT/target/debug}
SHARED_CRDS=${RAMP_SHARED_CRDS:-$ROOT/../shared/crds}
PROMETHEUS=${RAMP_PROMETHEUS:-$(command -v prometheus || true)}
KEEP=${KEEP:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ramp-demo-analysis.XXXXXX")
export KUBECONFIG=$WORK/kubeconfig
export KUBECACHEDIR=$WORK/kube-cache
export PATH=$BIN:$PATH
export NO_COLOR=${NO_COLOR:-1}
NS=default
RO=rollouts-demo

DEMO=demo-analysis
keep_hint() {
  echo "Everything keeps running (KEEP=1). Explore with:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl ramp status $RO; open $PROM_URL"
}
# shellcheck source=scripts/demo-lib.sh
source "$ROOT/scripts/demo-lib.sh"
[ -n "$PROMETHEUS" ] && [ -x "$PROMETHEUS" ] || { echo "demo-analysis: prometheus not found (apt-get install prometheus, or set RAMP_PROMETHEUS)" >&2; exit 1; }
jp() { kubectl get rollout $RO -o jsonpath="$1"; }
phase_is() { [ "$(jp '{.status.phase}')" = "$1" ]; }
at_step() { [ "$(jp '{.status.canaryStatus.currentStepIndex}/{.status.canaryStatus.currentStepState}')" = "$1/$2" ]; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
show_analysis() { kubectl ramp status $RO | sed -n '/^Analysis/,/^$/p'; }

step "Starting the embedded cluster (ramp-sim)"
"$BIN/ramp-sim" serve --listen 127.0.0.1:0 --kubeconfig "$KUBECONFIG" --crds "$SHARED_CRDS" >"$WORK/sim.log" 2>&1 &
pids+=($!)
wait_for "the API server is up" 20 kubectl get --raw /version
SIM=$(sed -n 's#^ *server: *https\?://##p' "$KUBECONFIG" | head -n1)

step "Starting Prometheus (scraping the sim's Istio metrics every second)"
PROM_PORT=$(free_port)
PROM_URL=http://127.0.0.1:$PROM_PORT
cat >"$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: ramp-sim
  static_configs: [{targets: ["$SIM"]}]
EOF
"$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
  --web.listen-address=127.0.0.1:$PROM_PORT >"$WORK/prometheus.log" 2>&1 &
pids+=($!)
wait_for "Prometheus is ready" 30 curl -sf "$PROM_URL/-/ready"
echo "Prometheus at $PROM_URL"

step "Installing the Rollout CRD and starting ramp-operator (--prometheus-url $PROM_URL)"
kubectl apply --server-side -f charts/ramp/crds/ >/dev/null
kubectl wait --for=condition=Established crd/rollouts.rollouts.ramp.dev >/dev/null
kubectl create namespace ramp-system >/dev/null
"$BIN/ramp-operator" run --operator-namespace ramp-system --metrics-listen 127.0.0.1:0 \
  --webhook-listen 127.0.0.1:0 --webhook-url https://127.0.0.1:0 --prometheus-url "$PROM_URL" >"$WORK/operator.log" 2>&1 &
pids+=($!)
wait_for "the operator registered its webhooks" 30 kubectl get mutatingwebhookconfiguration ramp

step "Applying examples/canary-istio with examples/analysis/rollout.yaml (the built-in metrics every 2 s)"
kubectl apply -f examples/canary-istio/deployment.yaml -f examples/canary-istio/service.yaml \
  -f examples/canary-istio/virtualservice.yaml >/dev/null
kubectl apply -f examples/analysis/rollout.yaml
wait_for "the rollout is Healthy" 60 phase_is Healthy
wait_for "workload-demo is ready" 60 kubectl rollout status deployment/workload-demo --timeout=1s
ramp-sim load start -n $NS --gateway simple-gateway --host service-demo --rps 100 >/dev/null
echo "100 requests/s flow through simple-gateway to service-demo"

step "1. A good canary (answers in about 40 ms): no approvals"
start=$SECONDS
kubectl patch deployment workload-demo --type=merge \
  -p '{"spec":{"template":{"metadata":{"annotations":{"sim.ramp.dev/latency-ms":"40"}}}}}' >/dev/null
for n in 1 2 3; do
  wait_for "step $n is paused" 90 at_step $n StepPaused
  wait_for "step $n is measured" 30 sh -c "kubectl get rollout $RO -o jsonpath='{.status.canaryStatus.analysis[0].phase}' | grep -q ."
  echo "--- step $n"
  show_analysis
done
wait_for "the rollout is Healthy" 120 phase_is Healthy
echo "Promoted without an approval in $((SECONDS - start))s: $(jp '{.status.message}')"
kubectl get events --field-selector reason=StepReady -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | tail -n 3

step "2. A bad canary (30% of answers are 5xx): aborted at its first step"
start=$SECONDS
kubectl patch deployment workload-demo --type=merge \
  -p '{"spec":{"template":{"metadata":{"annotations":{"sim.ramp.dev/error-rate":"0.3"}}}}}' >/dev/null
wait_for "step 1 is paused" 90 at_step 1 StepPaused
wait_for "the rollout is aborted" 60 phase_is Aborted
wait_for "the canary is scaled to 0" 60 sh -c "[ \"\$(kubectl get rollout $RO -o jsonpath='{.status.canaryStatus.canaryReplicas}')\" = 0 ]"
kubectl ramp status $RO | sed -n '1,/^Steps/p'
show_analysis
echo "--- VirtualService vs-demo .spec.http (restored)"
kubectl get virtualservice vs-demo -o jsonpath='{.spec.http}'; echo
echo "Aborted $((SECONDS - start))s after the template change."
step "Done: automatic promotion and automatic abort"
