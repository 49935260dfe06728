#!/usr/bin/env bash
# soak.sh — `make soak`: both controllers (release builds) with SOAK_N GitRepositories + SOAK_N
# KluctlDeployments (default 500) on the cluster of `make e2e-up`, a push every SOAK_PUSH_EVERY
# seconds (default 5) to one of 10 repositories, for SOAK_MINUTES (default 10); prints RSS growth,
# request rate, error lines, pushes applied (soak.py) and writes soak.svg + soak.json to
# $BENCH_WORK/soak-out (default target/bench/soak). SOAK_SOURCE_CONTROLLER / SOAK_KLUCTL_CONTROLLER
# name release binaries built elsewhere (then nothing is built).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${CARGO:=cargo}"
E2E_STATE=${E2E_STATE:-/tmp/kluctl-gitops-e2e}
die() { echo "soak: $*" >&2; exit 1; }
[ -f "$E2E_STATE/env.sh" ] || die "needs the local cluster, but $E2E_STATE/env.sh is missing: start it with 'make e2e-up'"
# shellcheck disable=SC1091
. "$E2E_STATE/env.sh"
kubectl get --raw /readyz >/dev/null 2>&1 \
  || die "the kube-apiserver (${E2E_APISERVER_URL:-?}) does not answer /readyz: start it with 'make e2e-up'"
TARGET_DIR=$(cd "$ROOT" && $CARGO metadata -q --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# SOAK_SOURCE_CONTROLLER / SOAK_KLUCTL_CONTROLLER: release binaries built elsewhere (no build here).
SOURCE_BIN=${SOAK_SOURCE_CONTROLLER:-$TARGET_DIR/release/source-controller}
KLUCTL_BIN=${SOAK_KLUCTL_CONTROLLER:-$TARGET_DIR/release/kluctl-controller}
if [ -z "${SOAK_SOURCE_CONTROLLER:-}${SOAK_KLUCTL_CONTROLLER:-}" ]; then
  (cd "$ROOT" && $CARGO build -q --release -p source-controller --bin source-controller -p kluctl-controller --bin kluctl-controller) \
    || die "cargo build --release of the controllers failed"
fi
OUT=${BENCH_WORK:+$BENCH_WORK/soak-out}
OUT=${OUT:-$TARGET_DIR/bench/soak}
if [ -n "${BENCH_WORK:-}" ]; then
  WORK=$BENCH_WORK
else
  WORK=$(mktemp -d /tmp/kluctl-soak.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
python3 "$HERE/soak.py" --source-controller "$SOURCE_BIN" --kluctl-controller "$KLUCTL_BIN" --kustomize "${E2E_KUSTOMIZE:-}" \
  --work "$WORK" --out "$OUT"
