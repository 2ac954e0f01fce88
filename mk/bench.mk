# Benchmarks of the embedded cluster. Included by the Makefile; `make bench` runs them.
#
#   make bench-sim                                     # 10,000 Deployments, 1,000 watchers
#   make bench-sim BENCH_SIM_ARGS="--objects 2000 --watchers 100"
#
# Builds ramp-sim in release mode, starts `ramp-sim serve` on 127.0.0.1 and prints a table of
# create throughput, LIST latency, watch fan-out delay and server RSS next to the targets
# (>= 5,000 writes/s, LIST of 10,000 < 100 ms, RSS < 500 MiB). Missed targets are reported,
# not failed; the target fails only when the benchmark itself cannot run.

BENCH_SIM_ARGS ?=

.PHONY: bench-sim
bench-sim: ## load benchmark of the ramp-sim API server (release build)
	$(CARGO) bench -p ramp-sim --bench sim -- $(BENCH_SIM_ARGS)

# Fleet benchmark of the operator: release ramp-operator + ramp-sim, N apps (e2e/benches/fleet.rs).
#
#   make bench-fleet                                   # 1,000 apps in 10 namespaces
#   make bench-fleet BENCH_FLEET_ARGS="--apps 10000"
#   make bench-fleet BENCH_FLEET_ARGS="--heap-profile" # operator under heaptrack
#   make bench-fleet BENCH_FLEET_ARGS="--cpu-profile"  # operator under perf record
BENCH_FLEET_ARGS ?=

.PHONY: bench-fleet
bench-fleet: ## fleet benchmark of the operator (RSS, CPU, API requests, approval latency)
	$(CARGO) build --release -p ramp-sim -p ramp-operator --bins
	$(CARGO) bench -p ramp-e2e --bench fleet -- $(BENCH_FLEET_ARGS)
