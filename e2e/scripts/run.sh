#!/usr/bin/env bash
# run.sh — `make run`: the product doing its job on this machine, until Ctrl-C.
#
#   1. the local control plane and git servers (make e2e-up, run by the Makefile before this)
#   2. the demo repository demo.git on the local git server, from e2e/fixtures/demo (a Kluctl
#      project with targets test and prod, an app item and a Helm item); kept when it exists, so
#      your pushes survive a restart (RUN_RESET=1 starts it over)
#   3. source-controller and kluctl-controller as local processes (this machine has no kubelet, so
#      they cannot run as the Deployments of the install manifests), logs under $E2E_STATE/run/
#   4. the sync: `kluctl bootstrap git --path clusters/local` pushes the installation manifests and
#      a GitRepository + KluctlDeployment kluctl-demo over clusters/local, which deploys the
#      KluctlDeployments demo-test and demo-prod of clusters/local/demo (the root project's two
#      targets), all in namespace kluctl-demo
#   5. prints the sources, the deployments and the deployed objects, then follows the deployments
#      (`kluctl get deployments -w`) until Ctrl-C, which stops the two controllers it started
#
# Everything it starts listens on 127.0.0.1 and is stopped by pid; the control plane stays up
# (`make e2e-down` stops it). Works before or after `make test`: its objects live in their own
# namespaces and its controllers watch only them.
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPTS/../.." && pwd)
# shellcheck source=lib.sh
. "$SCRIPTS/lib.sh"
CARGO=${CARGO:-cargo}
NS=kluctl-demo
RUN=$E2E_STATE/run
REPO=kluctl-demo

[ -f "$E2E_STATE/env.sh" ] || die "the local control plane is not up: run 'make e2e-up' (make run does it first)"
# shellcheck disable=SC1091
. "$E2E_STATE/env.sh"
kubectl get --raw /readyz >/dev/null 2>&1 || die "the kube-apiserver of $E2E_STATE does not answer: run 'make e2e-up'"

log "building source-controller, kluctl-controller and kluctl (debug, shared with make test)"
(cd "$ROOT" && $CARGO build -q -p source-controller --bin source-controller -p kluctl-controller --bin kluctl-controller -p kluctl --bin kluctl) \
  || die "cargo build failed"
TARGET=$(cd "$ROOT" && $CARGO metadata -q --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug
KLUCTL=$TARGET/kluctl
mkdir -p "$RUN"

# ------------------------------------------------------------------ demo repository
BARE=$E2E_GIT_REPOS/$REPO.git
if [ "${RUN_RESET:-0}" = 1 ] || [ ! -d "$BARE" ]; then
  log "creating $REPO.git from e2e/fixtures/demo"
  rm -rf "$BARE" "$RUN/seed"
  git init -q --bare -b main "$BARE"
  git init -q -b main "$RUN/seed"
  cp -r "$ROOT/e2e/fixtures/demo/." "$RUN/seed/"
  git -C "$RUN/seed" add -A
  git -C "$RUN/seed" -c user.name=make-run -c user.email=make-run@example.invalid commit -q -m "demo project"
  git -C "$RUN/seed" push -q "$BARE" HEAD:refs/heads/main
  rm -rf "$RUN/seed"
else
  log "keeping $REPO.git ($(git --git-dir "$BARE" rev-parse --short main)); RUN_RESET=1 starts it over"
fi
URL=$E2E_GIT_HTTP_URL/$REPO.git

# ------------------------------------------------------------------ controllers
PIDS=()
stop_all() {
  trap - INT TERM EXIT
  for name in watch kluctl-controller source-controller; do stop_pid "$RUN" "$name" 10; done
  log "stopped the controllers (the control plane keeps running: make e2e-down stops it)"
}
trap stop_all INT TERM EXIT
for name in kluctl-controller source-controller; do
  if alive "$RUN" "$name"; then die "$name of an earlier make run is still running (pid $(cat "$RUN/$name.pid")): stop it first"; fi
done

# A namespace still terminating (an earlier run's, or a test's cleanup) refuses new objects.
if [ "$(kubectl get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null)" = Terminating ]; then
  log "waiting for namespace $NS of an earlier run to be deleted"
  kubectl wait --for=delete "namespace/$NS" --timeout=180s >/dev/null \
    || die "namespace $NS is stuck in Terminating: $(kubectl get namespace "$NS" -o jsonpath='{.status.conditions}')"
fi
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
: > "$RUN/kluctl-controller.log"
KLUCTL_HELM=$E2E_HELM KLUCTL_KUSTOMIZE=$E2E_KUSTOMIZE "$TARGET/kluctl-controller" \
  --kubeconfig "$E2E_KUBECONFIG_ADMIN" --namespace "$NS" --controller-namespace "$NS" \
  --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
  --events-listen-addr 127.0.0.1:0 --receiver-listen-addr 127.0.0.1:0 \
  --command-result-namespace "$NS-results" --cache-dir "$RUN/kluctl-cache" \
  --log-format json --log-file "$RUN/kluctl-controller.log" 2>"$RUN/kluctl-controller.stderr" &
echo $! > "$RUN/kluctl-controller.pid"
events_addr=""
for _ in $(seq 1 600); do
  events_addr=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    try: v = json.loads(l)
    except ValueError: continue
    a = v.get("events_addr") or v.get("fields", {}).get("events_addr")
    if a: print(a); break' "$RUN/kluctl-controller.log" 2>/dev/null || true)
  [ -n "$events_addr" ] && break
  alive "$RUN" kluctl-controller || die "kluctl-controller exited: $(tail -5 "$RUN/kluctl-controller.stderr")"
  sleep 0.1
done
[ -n "$events_addr" ] || die "kluctl-controller did not report its event endpoint (log: $RUN/kluctl-controller.log)"

"$TARGET/source-controller" --kubeconfig "$E2E_KUBECONFIG_ADMIN" --storage-path "$RUN/storage" \
  --storage-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
  --watch-all-namespaces=false --runtime-namespace "$NS" --events-addr "http://$events_addr/" \
  --log-encoding json 2>"$RUN/source-controller.log" &
echo $! > "$RUN/source-controller.pid"
log "controllers running: kluctl-controller (events on $events_addr), source-controller; logs in $RUN/"

# ------------------------------------------------------------------ the sync, by bootstrap
# The same command as on a real cluster, but without the controller Deployments (no kubelet here:
# the controllers above are their stand-ins) and watching only this namespace.
log "bootstrapping $REPO.git (path clusters/local) into namespace $NS"
"$KLUCTL" bootstrap git --kubeconfig "$E2E_KUBECONFIG_ADMIN" -n "$NS" --url "$URL" --branch main \
  --path clusters/local --interval 5s --watch-all-namespaces=false --without-controller-deployments \
  --author-name make-run --author-email make-run@example.invalid \
  || die "kluctl bootstrap git failed (controller logs: $RUN/)"
log "waiting for the demo to be deployed"
kubectl -n "$NS" wait --for=condition=Ready gitrepository/$REPO --timeout=120s >/dev/null \
  || die "GitRepository $NS/$REPO not Ready: $(kubectl -n "$NS" get gitrepository $REPO -o jsonpath='{.status.conditions}')"
kubectl -n "$NS" wait --for=condition=Ready kluctldeployments.gitops.kluctl.io/demo-test kluctldeployments.gitops.kluctl.io/demo-prod --timeout=300s >/dev/null \
  || die "the demo KluctlDeployments are not Ready: $("$KLUCTL" get deployments -n "$NS" 2>&1)"

echo
"$KLUCTL" get sources -n "$NS"
echo
"$KLUCTL" get deployments -n "$NS"
echo
kubectl get namespaces,deployments,services,configmaps -n demo-test -l app.kubernetes.io/part-of=kluctl-demo
echo
cat <<EOF
The demo is deployed by GitOps. In another terminal, change it and push:

  git clone $URL /tmp/kluctl-demo && cd /tmp/kluctl-demo
  sed -i 's/Hello from the/Hi from the/' app/configmap.yaml
  git commit -qam "new greeting" && git push -q origin main
  source $E2E_STATE/env.sh && kubectl get configmap greeting -n demo-test -o jsonpath='{.data.message}'

Within seconds source-controller fetches the commit and kluctl-controller deploys it. Deleting a
file prunes its objects. Also: kluctl events -n $NS, kluctl trace configmap greeting -n demo-test.
The cluster manages itself from clusters/local of the repository (kluctl bootstrap git); on a
cluster with nodes the controllers' Deployments are part of it too (here they run as processes).
Ctrl-C stops the two controllers; the control plane stays up (make e2e-down stops it).

Following the deployments (Ctrl-C to stop):
EOF
"$KLUCTL" get deployments -n "$NS" -w &
echo $! > "$RUN/watch.pid"
# Wait until a controller exits or Ctrl-C arrives (the trap stops everything).
while alive "$RUN" kluctl-controller && alive "$RUN" source-controller; do sleep 1; done

die "a controller exited; see $RUN/*.log"
