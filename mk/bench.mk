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
