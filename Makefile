# ramp — developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Where the upstream Istio / Gateway API CRDs live (tests load them into the sim).
RAMP_SHARED_CRDS ?= $(abspath ../shared/crds)
export RAMP_SHARED_CRDS
# Test runner: nextest when installed, cargo test otherwise.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help test lint fmt crds check-crds demo bench build

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

test: lint ## lint, then every test in the workspace (unit, golden, integration, e2e)
	$(CARGO) build --workspace --bins
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc
else
	$(CARGO) test --workspace --no-fail-fast
endif

demo: ## run the canary walk-through on the embedded cluster
	@echo "make demo: not available yet." >&2
	@echo "It will start the embedded cluster (ramp-sim), install the CRDs, start ramp-operator," >&2
	@echo "apply examples/canary-istio/ and walk the canary steps with 'kubectl ramp approve'." >&2
	@echo "Missing pieces: the operator (issue 5), the kubectl plugin (issue 6), the demo (issue 7)." >&2
	@exit 1

bench: ## benchmarks (speed and memory targets live here, never in tests)
	@echo "make bench: no benchmarks yet (the sim benchmark comes with ramp-sim)." >&2
	@exit 1
