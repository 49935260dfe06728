# Entry points. `make run` shows the product deploying a demo repository by GitOps on a local control plane;
# `make test` runs every check CI runs, installing what is missing.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export E2E_STATE ?= /tmp/kluctl-gitops-e2e
CARGO ?= cargo
NOCEL_DIR := $(E2E_STATE)/crds-nocel
CRDGEN := target/debug/crdgen

# Fuzzing (cargo-fuzz, nightly): one crate with every target, its own workspace and target dir.
# No sanitizer: the code under test is safe Rust (unsafe_code is forbidden), so ASan would mostly
# slow the runs; debug assertions (overflow checks) stay on.
FUZZ_DIR := e2e/fuzz
FUZZ_TARGETS := artifact_untar duration_revision ignore_rules kluctl_yaml pack_unpack
FUZZ_FLAGS := --fuzz-dir $(FUZZ_DIR) --sanitizer none --debug-assertions
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_RUNS ?= 3000

.PHONY: help build generate check-generated fmt fmt-check clippy unit e2e-up e2e-down e2e-test e2e test run bench faults soak ci-deps \
	fuzz-deps fuzz fuzz-smoke

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build every crate and binary
	$(CARGO) build --workspace --all-targets

generate: ## regenerate config/crd/bases and docs/api from the API types, docs/cli/reference.md from the CLI
	$(CARGO) run -q -p gitops-api --bin crdgen
	UPDATE_CLI_REFERENCE=1 $(CARGO) test -q -p kluctl --test cli_reference

check-generated: ## fail when generated CRDs or API docs are stale
	$(CARGO) run -q -p gitops-api --bin crdgen -- --check

fmt: ## format the code
	$(CARGO) fmt --all

fmt-check: ## check formatting
	$(CARGO) fmt --all -- --check

clippy: ## lint every target; warnings are errors here (not in the source)
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: ## unit tests (no cluster needed)
	$(CARGO) test --workspace --exclude e2e
	$(CARGO) test -p e2e --lib

fuzz-deps: ## the nightly toolchain and cargo-fuzz the fuzz targets need (installed when missing)
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz

fuzz: fuzz-deps ## every fuzz target for FUZZ_SECONDS (default 600) each; corpora grow under $(E2E_STATE)/fuzz
	for t in $(FUZZ_TARGETS); do \
		mkdir -p $(E2E_STATE)/fuzz/$$t; \
		$(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t $(E2E_STATE)/fuzz/$$t $(FUZZ_DIR)/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=30 -print_final_stats=1; \
	done

fuzz-smoke: fuzz-deps ## every fuzz target, instrumented (nightly), over its seed corpus plus FUZZ_SMOKE_RUNS (3000) inputs (make test runs the stable smoke, e2e/tests/fuzz_smoke.rs)
	$(CARGO) +nightly fuzz build $(FUZZ_FLAGS)
	for t in $(FUZZ_TARGETS); do \
		scratch=$$(mktemp -d); \
		$(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t $$scratch $(FUZZ_DIR)/seeds/$$t -- \
			-runs=$(FUZZ_SMOKE_RUNS) -timeout=30 || { rm -rf "$$scratch"; exit 1; }; \
		rm -rf "$$scratch"; \
	done

$(CRDGEN): $(shell find api/src -name '*.rs') api/Cargo.toml
	$(CARGO) build -q -p gitops-api --bin crdgen

e2e-up: $(CRDGEN) ## install (cached) and start the local control plane + test servers, install our CRDs
	$(CRDGEN) --no-cel --out $(NOCEL_DIR)
	e2e/scripts/up.sh --crds config/crd/bases --no-cel-dir $(NOCEL_DIR)

e2e-down: ## stop everything e2e-up started (state is kept; e2e/scripts/down.sh --clean removes it)
	e2e/scripts/down.sh

e2e-test: ## run the end-to-end tests against the running environment (builds the binaries they start)
	$(CARGO) build -p source-controller --bin source-controller -p kluctl --bin kluctl \
		-p kluctl-controller --bin kluctl-controller
	$(CARGO) test -p e2e --tests -- --nocapture --test-threads 4

e2e: ## e2e-up, e2e-test, then e2e-down (also on failure)
	$(MAKE) e2e-up
	rc=0; $(MAKE) e2e-test || rc=$$?; $(MAKE) e2e-down; exit $$rc

test: ## everything CI checks: format, clippy, unit tests, generated files, e2e against a real apiserver
	@t0=$$(date +%s); \
	$(MAKE) fmt-check; \
	$(MAKE) clippy; \
	$(MAKE) unit; \
	$(MAKE) check-generated; \
	$(MAKE) e2e; \
	echo "make test: all checks passed in $$(( $$(date +%s) - t0 ))s"

bench: e2e-up ## benchmarks vs reference tools (B1-B6; starts the local cluster and servers): release build, prints ratios and goals
	CARGO="$(CARGO)" e2e/bench/run.sh

faults: e2e-up ## fault-injection suite (kills controllers, fails servers through proxies, STOPS the shared apiserver and pauses etcd: needs the env to itself); prints one table
	CARGO="$(CARGO)" e2e/scripts/faults.sh

soak: e2e-up ## soak: SOAK_N (500) GitRepositories + KluctlDeployments for SOAK_MINUTES (10) under steady pushes, release builds; RSS growth, request rate, error lines, pushes applied, soak.svg
	CARGO="$(CARGO)" e2e/bench/soak.sh

run: e2e-up ## the demo: local control plane + git server + both controllers deploying a demo repo by GitOps, until Ctrl-C
	CARGO="$(CARGO)" e2e/scripts/run.sh
