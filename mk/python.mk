# Python tooling for the Helm acceptance tests. Included from the top-level Makefile.
#
# helm-python-sdk binds Helm 4's Go SDK through a bundled shared library (ctypes), so the tests need
# neither a helm binary nor a Go toolchain: only this venv. `make venv` is idempotent: a stamp file
# named after the pinned version makes it a no-op once installed, and a version bump reinstalls.
# The Rust test crates/ramp-sim/tests/helm_*.rs looks for the venv in $RAMP_VENV (exported here),
# else in .venv at the repository root.

PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
HELM_PYTHON_SDK_VERSION := 0.2.2
VENV_STAMP := $(VENV)/.ramp-helm-python-sdk-$(HELM_PYTHON_SDK_VERSION)
RAMP_VENV := $(VENV)
export RAMP_VENV

.PHONY: venv venv-clean

venv: $(VENV_STAMP) ## Python venv with helm-python-sdk (used by the Helm tests)

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		'helm-python-sdk==$(HELM_PYTHON_SDK_VERSION)'
	$(VENV)/bin/python -c 'import helm_python'
	rm -f $(VENV)/.ramp-helm-python-sdk-*
	touch $@

venv-clean: ## remove the Python venv
	rm -rf $(VENV)
