#!/usr/bin/env bash
# up.sh — install (if needed) and start the whole local e2e infrastructure, then write $E2E_STATE/env.sh.
#
#   up.sh [--no-servers] [--crds DIR [--no-cel-dir DIR2]]
#
#   --no-servers        only the cluster (no git/S3 servers, no helm/kustomize install)
#   --crds DIR          also install the CRDs in DIR (cluster.sh apply-crds): hybrid/CEL when available
#   --no-cel-dir DIR2   the CEL-free variant of the same CRDs, used when CEL cannot be served
#                       (make it with: cargo run -q -p gitops-api --bin crdgen -- --no-cel --out DIR2)
#
# Then:  . ${E2E_STATE:-/tmp/kluctl-gitops-e2e}/env.sh     (stop with down.sh; down.sh --clean wipes state)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

servers=1 crds="" nocel=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-servers) servers=0; shift ;;
    --crds) crds=${2:?--crds needs a directory}; shift 2 ;;
    --no-cel-dir) nocel=${2:?--no-cel-dir needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see $0 --help)" ;;
  esac
done
[ -z "$nocel" ] || [ -n "$crds" ] || die "--no-cel-dir needs --crds"

T0=$(now_ms)
TIMES=()
phase() {  # phase NAME CMD...
  local name=$1 t; shift
  t=$(now_ms)
  "$@" || die "phase '$name' failed"
  TIMES+=("$(printf '%-18s %6d ms' "$name" $(( $(now_ms) - t )))")
}

mkdir -p "$E2E_STATE"; chmod 700 "$E2E_STATE"
phase "cluster install" "$SCRIPTS_DIR/cluster.sh" install
phase "cluster start" "$SCRIPTS_DIR/cluster.sh" start
if [ "$servers" = 1 ]; then
  phase "servers install" "$SCRIPTS_DIR/servers.sh" install
  phase "servers start" "$SCRIPTS_DIR/servers.sh" start
else
  rm -f "$E2E_STATE/env.d/30-servers.sh"
fi
if [ -n "$crds" ]; then
  args=("$crds"); [ -z "$nocel" ] || args+=(--no-cel-dir "$nocel")
  phase "apply-crds" "$SCRIPTS_DIR/cluster.sh" apply-crds "${args[@]}"
fi
assemble_env

# summary (no secrets: those are only in env.sh, mode 600)
# shellcheck disable=SC1091
. "$E2E_STATE/env.sh"
{
  echo
  echo "=== e2e infrastructure up in $(( $(now_ms) - T0 )) ms"
  printf '  %s\n' "${TIMES[@]}"
  echo "  env:        . $E2E_STATE/env.sh"
  echo "  cluster:    $E2E_APISERVER_URL  kube-apiserver $E2E_KUBE_VERSION  (admin: \$E2E_KUBECONFIG_ADMIN, non-admin dev-user: \$E2E_KUBECONFIG_DEV)"
  if [ "${E2E_HYBRID_RUNNING:-0}" = 1 ]; then echo "              + apiextensions-apiserver $E2E_APIEXT_URL (hybrid: CRDs applied via apply-crds get CEL)"
  else echo "              no hybrid apiextensions-apiserver (CRDs go into kube-apiserver 1.20, CEL not enforced)"; fi
  [ -z "${E2E_CRD_MODE:-}" ] || echo "  CRDs:       mode $E2E_CRD_MODE, E2E_CEL=$E2E_CEL"
  echo "  kubectl:    $E2E_KUBECTL"
  if [ "$servers" = 1 ]; then
    echo "  git http:   $E2E_GIT_HTTP_URL/<repo>.git   basic auth: $E2E_GIT_HTTP_AUTH_URL/<repo>.git (user $E2E_GIT_USERNAME, \$E2E_GIT_PASSWORD)"
    echo "  git https:  $E2E_GIT_HTTPS_URL  $E2E_GIT_HTTPS_AUTH_URL  (CA \$E2E_TEST_CA)   mTLS: $E2E_GIT_MTLS_URL (\$E2E_TLS_CLIENT_CERT/KEY)"
    echo "  git daemon: $E2E_GIT_DAEMON_URL/<repo>.git"
    echo "  git ssh:    $E2E_GIT_SSH_URL/<repo>.git  (\$E2E_SSH_IDENTITY, \$E2E_SSH_KNOWN_HOSTS)"
    echo "  repos:      $E2E_GIT_REPOS (bare; demo.git is a ready-made example)"
    echo "  S3:         http://$E2E_S3_ENDPOINT  (\$E2E_S3_ACCESS_KEY/\$E2E_S3_SECRET_KEY; anonymous read on bucket $E2E_S3_PUBLIC_BUCKET)"
    echo "  tools:      helm $E2E_HELM, kustomize $E2E_KUSTOMIZE, weed $E2E_WEED, python+boto3 $E2E_PYTHON"
  fi
  echo "  stop:       $SCRIPTS_DIR/down.sh   (--clean also deletes state + etcd data)"
} >&2
