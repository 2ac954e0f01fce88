# ramp — developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Where the upstream Istio / Gateway API CRDs live (tests load them into the sim).
RAMP_SHARED_CRDS ?= $(abspath ../shared/crds)
export RAMP_SHARED_CRDS
# Test runner: nextest when installed, cargo test otherwise.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help test lint fmt crds check-crds demo demo-analysis bench build

include mk/python.mk
include mk/bench.mk

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build every crate and binary
	$(CARGO) build --workspace --all-targets

fmt: ## format the code
	$(CARGO) fmt --all

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

crds: ## regenerate the Rollout CRD in the chart from the Rust types
	$(CARGO) run -q -p ramp-api --example crdgen > charts/ramp/crds/rollouts.ramp.dev.yaml

test: lint venv ## lint, then every test in the workspace (unit, golden, integration, e2e)
	$(CARGO) build --workspace --bins
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc
else
	$(CARGO) test --workspace --no-fail-fast
endif

demo: ## run the canary walk-through on the embedded cluster (KEEP=1 leaves it running)
	$(CARGO) build --workspace --bins
	KEEP=$(KEEP) scripts/demo.sh

demo-analysis: ## metric analysis on the embedded cluster with a real Prometheus: an automatic promotion and an automatic abort (KEEP=1 leaves it running)
	$(CARGO) build --workspace --bins
	KEEP=$(KEEP) scripts/demo-analysis.sh

bench: bench-sim bench-fleet ## benchmarks (speed and memory figures live here, never in tests)

.PHONY: soak
soak: ## the fault soak at full size: 100 Rollouts under injected faults for 15 minutes
	$(CARGO) build --workspace --bins
	RAMP_SOAK=1 $(CARGO) test -p ramp-e2e --test fault_soak -- --nocapture
