#!/usr/bin/env bash
# faults.sh — `make faults`: the whole fault-injection suite, then ONE table (fault, runs, objects
# lost, foreign objects touched, secrets leaked, recovered, time to recover).
#
# Runs e2e/tests/faults_quick.rs (also part of `make test`) and e2e/tests/faults_destructive.rs, whose
# tests are #[ignore]d so `make test` never runs them: they stop and start the shared kube-apiserver
# and pause etcd, so this needs the e2e environment to itself. The one slow test of faults_quick.rs
# (#[ignore]d too, to keep `make test` quick) runs here with --include-ignored. Each test appends its rows to
# $E2E_FAULTS_RESULTS; target/debug/faults-table prints them.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CARGO:=cargo}"
export E2E_STATE=${E2E_STATE:-/tmp/kluctl-gitops-e2e}
export E2E_FAULTS_RESULTS=$E2E_STATE/faults/results.jsonl
mkdir -p "$(dirname "$E2E_FAULTS_RESULTS")"
rm -f "$E2E_FAULTS_RESULTS"
$CARGO build -p source-controller --bin source-controller -p kluctl-controller --bin kluctl-controller \
  -p e2e --bin faults-table
rc=0
$CARGO test -p e2e --test faults_quick -- --include-ignored --nocapture --test-threads 3 || rc=$?
$CARGO test -p e2e --test faults_destructive -- --ignored --nocapture --test-threads 1 || rc=$?
echo
echo "=== make faults: $( [ "$rc" = 0 ] && echo "every invariant held" || echo "FAILED (see above)" )"
target/debug/faults-table "$E2E_FAULTS_RESULTS" || rc=$?
exit $rc
