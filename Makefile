# guestops.vsphere: every command a developer or CI needs.  Run `make help`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
PORT ?= 8989
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/build
# ansible-test needs the collection inside ansible_collections/<namespace>/<name>, and it must not
# sit inside a git work tree (ansible-test would take the outer repository's file list), so the
# copy lives in the user's cache, one per checkout.
CHECKOUT_ID := $(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)
COLLECTIONS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/guestops-vsphere/$(CHECKOUT_ID)/collections
COLLECTION := $(COLLECTIONS)/ansible_collections/guestops/vsphere
CLOUD_CONFIG := $(COLLECTION)/tests/integration/cloud-config-vcenter.ini
# ansible-test bootstraps pip in each virtual environment it creates with a script it downloads
# from a host we cannot reach; it looks in this cache first (pip 24.2 is what ansible-core 2.19 pins).
GET_PIP_CACHE := $(HOME)/.ansible/test/cache/get_pip_24_2.py
RUN := PATH="$(BIN):$$PATH" ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS)"
ANSIBLE_TEST := cd "$(COLLECTION)" && $(RUN) ansible-test
TEST_PYTHON := --python 3.11 --color no

.PHONY: help venv collection tools windows-tools simulator demo test simulator-tests units sanity integration lint dist bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## Create .venv with ansible-core, pyvmomi and the test tools

$(VENV)/.installed: tests/requirements-dev.txt tests/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=python3.11)")'
	$(PYTHON) -m venv "$(VENV)"
	"$(BIN)/python" -m pip install --quiet --upgrade pip -c tests/constraints.txt
	"$(BIN)/python" -m pip install --quiet -r tests/requirements-dev.txt
	touch "$@"

$(GET_PIP_CACHE): .ci/get_pip_offline.py
	mkdir -p "$(dir $@)"
	cp .ci/get_pip_offline.py "$@"

collection: venv ## Mirror the checkout into ~/.cache/guestops-vsphere/<id>/collections/ansible_collections/guestops/vsphere
	"$(BIN)/python" .ci/sync_collection.py "$(CURDIR)" "$(COLLECTION)"

tools: ## Install shellcheck for the sanity test when it is missing (needs apt-get and root)
	@if ! command -v shellcheck >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null) \
	      || { echo "error: could not install shellcheck, which the sanity tests need" >&2; exit 1; }; \
	  else echo "error: shellcheck is not installed; the sanity tests need it (apt-get install shellcheck)" >&2; exit 1; fi; \
	fi

# Windows VMs of the simulator run their programs with Debian's Wine (wine64; its loader is
# /usr/lib/wine/wine64, not on PATH) and the simulator builds its Windows helpers with mingw-w64.
WINE64 ?= /usr/lib/wine/wine64
MINGW_GCC ?= x86_64-w64-mingw32-gcc
windows-tools: ## Install wine64 and gcc-mingw-w64-x86-64 for the Windows VMs when missing (needs apt-get and root)
	@if [ ! -x "$(WINE64)" ] || ! command -v $(MINGW_GCC) >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine64 gcc-mingw-w64-x86-64 >/dev/null) \
	      || { echo "error: could not install wine64 and gcc-mingw-w64-x86-64, which the Windows VMs need" >&2; exit 1; }; \
	  else echo "error: wine64 ($(WINE64)) or $(MINGW_GCC) is missing; the Windows VMs need them (apt-get install wine64 gcc-mingw-w64-x86-64)" >&2; exit 1; fi; \
	fi
	@[ -x "$(WINE64)" ] || { echo "error: $(WINE64) is still missing after installing wine64" >&2; exit 1; }
	@command -v $(MINGW_GCC) >/dev/null || { echo "error: $(MINGW_GCC) is still missing" >&2; exit 1; }

simulator: venv windows-tools ## Run the vSphere simulator in the foreground on 127.0.0.1:8989 (PORT=... to change)
	mkdir -p "$(BUILD)"
	PYTHONPATH=tests "$(BIN)/python" -m guestsim --port $(PORT) --state-dir "$(BUILD)/simulator" \
	  --write-cloud-config tests/integration/cloud-config-vcenter.ini

demo: collection ## Run the run_program role against the simulator and show the guest program's output
	mkdir -p "$(BUILD)"
	GUESTSIM_PYTHON="$(BIN)/python" .ci/with-simulator "$(BUILD)/demo-cloud-config.ini" \
	  env $(RUN) DEMO_FETCH_DIR="$(BUILD)/demo-output" ansible-playbook playbooks/demo.yml

test: simulator-tests units sanity integration lint dist ## Everything CI runs: simulator tests, units, sanity, integration, lint, build
	@echo "make test: all suites passed"

simulator-tests: venv windows-tools ## The simulator's own pytest suite (Windows VMs included: needs windows-tools)
	PYTHONPATH=tests "$(BIN)/python" -m pytest -p no:cacheprovider -q tests/guestsim/tests

units: collection $(GET_PIP_CACHE) ## ansible-test units
	$(ANSIBLE_TEST) units --venv $(TEST_PYTHON)

sanity: collection tools $(GET_PIP_CACHE) ## ansible-test sanity
	$(ANSIBLE_TEST) sanity --venv $(TEST_PYTHON)

integration: collection $(GET_PIP_CACHE) ## ansible-test integration against the simulator
	mkdir -p "$(BUILD)"
	GUESTSIM_PYTHON="$(BIN)/python" .ci/with-simulator "$(CLOUD_CONFIG)" \
	  bash -c 'cd "$(COLLECTION)" && $(RUN) ansible-test integration --venv --continue-on-error $(TEST_PYTHON) $(TARGETS)' \
	  | tee "$(BUILD)/integration.log"
	@if grep -q 'All targets skipped\|Excluding tests marked "cloud/vcenter"' "$(BUILD)/integration.log"; then \
	  echo "error: integration targets were skipped; the cloud config was not picked up" >&2; exit 1; fi

lint: collection ## ansible-lint (production profile), collection docs lint, changelog lint
	cd "$(COLLECTION)" && PATH="$(BIN):$$PATH" ansible-lint --profile production
	cd "$(COLLECTION)" && $(RUN) antsibull-docs lint-collection-docs --plugin-docs .
	cd "$(COLLECTION)" && $(RUN) antsibull-changelog lint

dist: venv ## Build the collection artifact into build/dist and check that no local file got in
	rm -rf "$(BUILD)/dist"
	"$(BIN)/ansible-galaxy" collection build --force --output-path "$(BUILD)/dist" .
	@if tar -tzf "$(BUILD)"/dist/guestops-vsphere-*.tar.gz \
	    | grep -E '(^|/)(\.venv|\.cache|\.ansible|build|output|__pycache__)/|cloud-config-vcenter\.ini$$|\.pyc$$'; then \
	  echo "error: the artifact above carries local files; extend build_ignore in galaxy.yml" >&2; exit 1; fi
	@echo "artifact: $$(ls "$(BUILD)"/dist/*.tar.gz) ($$(tar -tzf "$(BUILD)"/dist/*.tar.gz | wc -l) entries)"

# The peer that `make bench` compares against: the PyPI ansible bundle (community.vmware; 12.x pairs
# with ansible-core 2.19, the newest on Python 3.11) in its own environment, created once.
PEER_VENV := $(BUILD)/peer-venv
PEER_ANSIBLE ?= ansible>=12,<13
# The fleet benchmarks need BENCH_VM00..19; a simulator that has them saves run.py starting its own.
BENCH_GUESTSIM_ARGS := --inventory $(CURDIR)/tests/bench/inventory-20.yml
.PHONY: peer

peer: $(PEER_VENV)/.installed ## Create build/peer-venv with the PyPI ansible bundle, pyvmomi and requests (make bench's peer)

$(PEER_VENV)/.installed:
	mkdir -p "$(BUILD)"
	$(PYTHON) -m venv "$(PEER_VENV)"
	"$(PEER_VENV)/bin/python" -m pip install --quiet --upgrade pip
	"$(PEER_VENV)/bin/python" -m pip install --quiet "$(PEER_ANSIBLE)" pyvmomi requests
	touch "$@"

bench: collection peer ## Speed and memory benchmarks, side by side with the peer (BENCH_SIZE_MIB=2048 for the transfer)
	mkdir -p "$(BUILD)"
	GUESTSIM_PYTHON="$(BIN)/python" GUESTSIM_ARGS="$(BENCH_GUESTSIM_ARGS)" \
	  .ci/with-simulator "$(BUILD)/bench-cloud-config.ini" \
	  env $(RUN) BENCH_PEER_VENV="$(PEER_VENV)" "$(BIN)/python" tests/bench/run.py

clean: ## Remove build output, the collection copy and the virtual environment
	rm -rf "$(BUILD)" "$(VENV)" "$(dir $(COLLECTIONS))"
