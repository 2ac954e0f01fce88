# Shared by scripts/demo.sh and scripts/demo-analysis.sh (sourced, not run).
#
# Before sourcing, set DEMO (the name in messages, e.g. "demo"), BIN, SHARED_CRDS,
# KEEP and WORK, and define keep_hint (what to print when KEEP=1 leaves things
# running). Processes started by the demo go into the pids array.

for b in ramp-sim ramp-operator kubectl-ramp; do
  [ -x "$BIN/$b" ] || { echo "$DEMO: $BIN/$b is missing; run 'cargo build --workspace --bins' (make $DEMO does)" >&2; exit 1; }
done
[ -d "$SHARED_CRDS" ] || { echo "$DEMO: Istio CRDs not found at $SHARED_CRDS (set RAMP_SHARED_CRDS)" >&2; exit 1; }

pids=()
cleanup() {
  local rc=$?
  if [ -n "$KEEP" ] && [ $rc -eq 0 ]; then
    echo
    keep_hint
    echo "Stop them with: kill ${pids[*]}"
    return
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "$DEMO failed (exit $rc); logs in $WORK" >&2
    tail -n 30 "$WORK/operator.log" >&2 2>/dev/null || true
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
wait_for() { # description, timeout seconds, command...
  local what=$1 t=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then echo "$DEMO: timed out waiting until $what" >&2; return 1; fi
    sleep 0.2
  done
}
