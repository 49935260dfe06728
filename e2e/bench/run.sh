#!/usr/bin/env bash
# run.sh — `make bench`: speed and memory of source-controller against reference tools, measured in
# the same run on the same machine, printed as ratios against the goals. See README.md here.
#
#   B1  cold reconcile of a 10,000-file / ~40 MB / 500-commit repo to a stored artifact
#         vs  git clone --depth 1 + tar czf                         wall <= 0.5x, peak RSS <= 50%
#   B2  reconcile with the remote ref unchanged (resolve only)  vs  git ls-remote     wall <= 1.2x
#   B4  cold reconcile of a 2,000-object / ~20 MB bucket in SeaweedFS to a stored artifact
#         vs  aws s3 sync + tar czf (awscli from PyPI)               wall <= 1.0x, peak RSS <= 50%;
#       no-change reconcile (listing + index digest)  vs  one `aws s3api list-objects-v2`
#   B5  artifact server, 10 KB and 1 MB files, wrk -t2 -c50 -d10s vs nginx (median of 3 alternating
#         rounds)   >= 1.0x req/s at 10 KB, equal bytes/s at 1 MB
#   B3  kluctl render of a generated 50-item / 1,000-object Jinja2 project (offline)
#         vs Python Jinja2 3.1 + kustomize build per item (b3.py)                  >= 40x faster
#   B6  kluctl deploy of 1,000 objects (20 CRDs + a CR each, ConfigMaps, Services, Deployments)
#         vs kubectl apply --server-side of the same rendered objects (b6.py)      >= 2x faster
#         on loopback, >= 3x through a 10 ms round-trip delay proxy, <= 1.25x the apiserver's
#         CPU-seconds; unchanged redeploy <= 0.1 apiserver requests per object, no writes; peak
#         RSS <= 0.5x. Needs the cluster of `make e2e-up`.
#   B7  scale: source-controller + kluctl-controller (release) with N GitRepositories and N
#         KluctlDeployments (B7_N, default 1000): time to all Ready, idle RSS, CPU and apiserver
#         requests (b7.py) vs goals and Flux's published figures. Needs the e2e cluster.
#   B8  latency git push -> changed object in the apiserver, 50 pushes triggered by
#         reconcile.fluxcd.io/requestedAt (b8.py): p50 < 1 s, p99 < 3 s. Needs the e2e cluster.
#   B9  notification dispatcher: 50,000 Flux events through 100 Alerts to a local sink (b9.py +
#         examples/notify_load): >= 5,000 events/s, p99 < 50 ms, none lost, Flux's dedup.
#   B10 web UI (kluctl webui run, release) with 1,000 KluctlDeployments and 5,000 stored results in
#         headless Chromium (b10.py): first paint and a deployment page < 1 s, RSS <= 50 MiB,
#         apiserver requests the same with 1 and 20 tabs open. Needs the e2e cluster.
#
# Steps: install wrk + nginx-light (+ python3) from Debian if missing; make sure the git test
# servers run (started here if none was, and then stopped at the end); generate the B1 repo and the
# B4 bucket (both cached); install awscli into its own venv (cached); build the examples with
# --release; run e2e/bench/bench.py.
#
# A MISS is not a failure: the numbers are the result. A broken measurement (a tool missing, a
# command failing, a wrong artifact, a server answering badly) exits non-zero.
#
# Env: E2E_STATE (default /tmp/kluctl-gitops-e2e), CARGO (default cargo),
#      BENCH_ONLY=B1,B2,B3,B4,B5,B6,B7,B8,B9,B10 (subset), BENCH_WORK (scratch dir, default a new temp dir),
#      B7_N (objects of each kind in B7, default 1000), B7_INTERVAL (their spec.interval, default 5m),
#      B10_DEPLOYMENTS / B10_RESULTS (default 1000 / 5000).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SERVERS=$ROOT/e2e/scripts/servers.sh
export E2E_STATE=${E2E_STATE:-/tmp/kluctl-gitops-e2e}
CARGO=${CARGO:-cargo}
REPO_NAME=bench-10k
REPO_COMMITS=500
# Bump when gen_repo.py changes what it writes, so the cached repo is rebuilt.
REPO_GEN_VERSION=1
HTTP_URL=http://127.0.0.1:18080/git
KG_CACHE=${KG_CACHE:-$HOME/.cache/kluctl-gitops}
AWSCLI_VERSION=1.46.3
AWS_VENV=$KG_CACHE/venv-awscli
# B4 objects live under a prefix of the shared scratch bucket: every SeaweedFS bucket takes volumes
# of its own, and `weed mini` on a small disk has only a few.
B4_BUCKET=e2e
B4_PREFIX=bench-b4/
# Bump when the B4 generator below changes what it writes.
B4_GEN_VERSION=1

log() { echo "[bench $(date +%T)] $*" >&2; }
die() { echo "[bench] ERROR: $*" >&2; exit 1; }

T0=$(date +%s)

# ------------------------------------------------------------------------------------ tools
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {  # apt_install PKG...: install from Debian, with one `apt-get update` retry
  local log_file=${TMPDIR:-/tmp}/bench-apt.log rc=0 guard=""
  # Debian starts services on install (nginx would listen on :80); a policy-rc.d that says "no"
  # prevents that. Only added when the system has none, and removed again.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null && as_root chmod 755 /usr/sbin/policy-rc.d && guard=1
  fi
  log "apt-get install $* (log: $log_file)"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "$@" >"$log_file" 2>&1 || {
    log "apt-get install failed; running apt-get update once and retrying"
    as_root apt-get update -q >>"$log_file" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "$@" >>"$log_file" 2>&1 || rc=$?
  }
  [ -z "$guard" ] || as_root rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { tail -15 "$log_file" >&2; return 1; }
}

install_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v python3 >/dev/null || missing+=(python3)
  command -v git >/dev/null || missing+=(git)
  command -v tar >/dev/null || missing+=(tar)
  command -v gzip >/dev/null || missing+=(gzip)
  [ -x /usr/bin/time ] || missing+=(time)
  [ ${#missing[@]} = 0 ] && return 0
  if ! apt_install "${missing[@]}"; then
    # newer Debian folds nginx-light into nginx
    if [[ " ${missing[*]} " != *" nginx-light "* ]] || ! apt_install "${missing[@]/nginx-light/nginx}"; then
      die "could not install ${missing[*]} from Debian (see above). Install them by hand (apt-get install -y ${missing[*]}) and re-run."
    fi
  fi
  if ! command -v wrk >/dev/null || [ ! -x /usr/sbin/nginx ] || ! command -v python3 >/dev/null || [ ! -x /usr/bin/time ]; then
    die "wrk, /usr/sbin/nginx, /usr/bin/time or python3 still missing after apt-get install ${missing[*]}"
  fi
}

# ------------------------------------------------------------------------------------ servers
STARTED_SERVERS=0
cleanup() {
  local rc=$?
  if [ "$STARTED_SERVERS" = 1 ]; then log "stopping the git test servers this run started"; "$SERVERS" stop || true; fi
  [ -n "${OWN_WORK:-}" ] && rm -rf "$OWN_WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_servers() {
  local st
  st=$("$SERVERS" status 2>&1 || true)
  if grep -q '^lighttpd: running' <<<"$st"; then
    log "git test servers already running; leaving them running afterwards"
    return 0
  fi
  if ! grep -q ': running' <<<"$st"; then STARTED_SERVERS=1; fi
  log "starting the git test servers (servers.sh install + start)"
  "$SERVERS" install >/dev/null || die "servers.sh install failed"
  "$SERVERS" start || die "servers.sh start failed"
}

# ------------------------------------------------------------------------------------ B1 repo
ensure_repo() {
  local repos=$E2E_STATE/git/repos dest
  dest=$repos/$REPO_NAME.git
  mkdir -p "$repos"
  if [ "$(cat "$dest/bench-gen-version" 2>/dev/null)" = "$REPO_GEN_VERSION" ] \
    && [ "$(git -C "$dest" rev-list --count refs/heads/main 2>/dev/null)" = "$REPO_COMMITS" ]; then
    log "B1 repo $dest cached ($(git -C "$dest" rev-parse --short refs/heads/main))"
    return 0
  fi
  log "generating B1 repo $dest (10,000 YAML files, ~40 MB, $REPO_COMMITS commits)"
  local t; t=$(date +%s%N)
  python3 "$HERE/gen_repo.py" "$dest" --files 10000 --commits "$REPO_COMMITS" --bytes 40000000 >&2 \
    || die "generating $dest failed"
  echo "$REPO_GEN_VERSION" > "$dest/bench-gen-version"
  log "generated in $(( ($(date +%s%N) - t) / 1000000 )) ms"
}

# ------------------------------------------------------------------------------------ B4
ensure_awscli() {
  # its own venv: awscli pins botocore, which must not move the e2e venv's boto3
  if [ -x "$AWS_VENV/bin/aws" ] && [ -f "$AWS_VENV/.done-$AWSCLI_VERSION" ]; then return 0; fi
  log "installing awscli==$AWSCLI_VERSION into $AWS_VENV (wheels kept in $KG_CACHE/wheels)"
  rm -rf "$AWS_VENV"
  python3 -m venv "$AWS_VENV" || die "python3 -m venv failed (apt-get install python3-venv?)"
  mkdir -p "$KG_CACHE/wheels"
  if ! "$AWS_VENV/bin/pip" install -q --no-index --find-links "$KG_CACHE/wheels" "awscli==$AWSCLI_VERSION" >/dev/null 2>&1; then
    "$AWS_VENV/bin/pip" download -q -d "$KG_CACHE/wheels" "awscli==$AWSCLI_VERSION" || die "pip download awscli==$AWSCLI_VERSION failed (is the Python package index reachable?)"
    "$AWS_VENV/bin/pip" install -q --no-index --find-links "$KG_CACHE/wheels" "awscli==$AWSCLI_VERSION" || die "pip install awscli failed"
  fi
  touch "$AWS_VENV/.done-$AWSCLI_VERSION"
}

# ensure_bucket: 2,000 objects of ~10 KB (YAML-like text, 40 directories) under $B4_PREFIX in
# SeaweedFS; cached by a marker object that names the generator version.
ensure_bucket() {
  local s3ctl=$ROOT/e2e/scripts/s3ctl.py have
  have=$(cd "$WORK" && "$E2E_PYTHON" "$s3ctl" list "$B4_BUCKET" "$B4_PREFIX" 2>/dev/null \
    | python3 -c 'import json,sys; l=json.load(sys.stdin); print(len(l), any(k == "'"$B4_PREFIX"'gen-v'"$B4_GEN_VERSION"'" for k, _ in l))' 2>/dev/null || true)
  if [ "$have" = "2000 True" ]; then log "B4 objects s3://$B4_BUCKET/$B4_PREFIX cached"; return 0; fi
  log "generating B4 objects s3://$B4_BUCKET/$B4_PREFIX (2,000 objects, ~20 MB)"
  "$E2E_PYTHON" "$s3ctl" rmprefix "$B4_BUCKET" "$B4_PREFIX" >/dev/null 2>&1 || true
  "$E2E_PYTHON" "$s3ctl" mkbucket "$B4_BUCKET" || die "creating bucket $B4_BUCKET failed"
  local src=$WORK/b4-src/${B4_PREFIX%/}; rm -rf "$WORK/b4-src"
  python3 - "$src" "$B4_GEN_VERSION" <<'PY' || die "generating the B4 objects failed"
import os, random, sys
root, version = sys.argv[1], sys.argv[2]
rnd = random.Random(4)
words = ["replicas", "image", "port", "name", "value", "config", "enabled", "memory", "cpu", "path"]
for i in range(1999):
    d = os.path.join(root, "svc-%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    lines = ["# object %d" % i]
    while sum(len(l) + 1 for l in lines) < 10000:
        lines.append("%s-%d: %s-%08x" % (rnd.choice(words), rnd.randrange(1000), rnd.choice(words), rnd.getrandbits(32)))
    with open(os.path.join(d, "obj-%04d.yaml" % i), "w") as f:
        f.write("\n".join(lines) + "\n")
with open(os.path.join(root, "gen-v" + version), "w") as f:
    f.write("B4 generator version %s\n" % version)
PY
  "$E2E_PYTHON" "$s3ctl" putdir "$B4_BUCKET" "$WORK/b4-src" >/dev/null || die "uploading the B4 objects failed"
  rm -rf "$WORK/b4-src"
}

# ------------------------------------------------------------------------------------ main
ONLY=${BENCH_ONLY:-B1,B2,B3,B4,B5,B6,B7,B8,B9,B10}
SOURCE_ONLY=$(tr ',' '\n' <<<"$ONLY" | grep -v -x -i -e b3 -e b6 -e b7 -e b8 -e b9 -e b10 | paste -sd, - || true)
want() { grep -q -i -w "$1" <<<"${ONLY//,/ }"; }

# B6 to B10 talk to the e2e cluster: check it first, so a missing cluster fails before minutes
# of builds.
if want b6 || want b7 || want b8 || want b9 || want b10; then
  [ -f "$E2E_STATE/env.sh" ] \
    || die "B6-B9 need the local cluster, but $E2E_STATE/env.sh is missing: start it with 'make e2e-up' (then re-run)"
  # shellcheck disable=SC1091
  . "$E2E_STATE/env.sh"
  kubectl get --raw /readyz >/dev/null 2>&1 \
    || die "B6-B9 need the local cluster, but the kube-apiserver (${E2E_APISERVER_URL:-?}) does not answer /readyz: start it with 'make e2e-up' (then re-run)"
fi

install_tools
if [ -n "$SOURCE_ONLY" ]; then
  ensure_servers
  ensure_repo
  log "building the benchmark examples (release)"
  (cd "$ROOT" && $CARGO build -q --release -p source-controller --example reconcile_core --example serve_dir --example bucket_core) \
    || die "cargo build --release of the examples failed"
fi
TARGET_DIR=$(cd "$ROOT" && $CARGO metadata -q --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/release/examples

# Scratch (checkouts, archives, storage, served files): a tmpfs when there is one with room, so
# both sides are measured on the same fast file system and the numbers show the software rather
# than the disk (creating 10,000 files on a VM disk can cost seconds, the same for both sides).
# BENCH_WORK=/some/disk/dir measures on that file system instead.
if [ -n "${BENCH_WORK:-}" ]; then
  WORK=$BENCH_WORK; mkdir -p "$WORK"
else
  base=/tmp
  if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 2097152 ]; then
    base=/dev/shm
  fi
  WORK=$(mktemp -d "$base/kluctl-bench.XXXXXX"); OWN_WORK=$WORK
fi

B4_ARGS=()
if [[ ",$ONLY," == *",B4,"* ]]; then
  # shellcheck disable=SC1091
  . "$E2E_STATE/env.sh"
  ensure_awscli
  ensure_bucket
  B4_ARGS=(--bucket-core "$BIN/bucket_core" --aws "$AWS_VENV/bin/aws" --s3-endpoint "$E2E_S3_ENDPOINT" --bucket "$B4_BUCKET" --prefix "$B4_PREFIX")
  export BUCKET_ACCESS_KEY=$E2E_S3_ACCESS_KEY BUCKET_SECRET_KEY=$E2E_S3_SECRET_KEY
fi

URL=$HTTP_URL/$REPO_NAME.git
if [ -n "$SOURCE_ONLY" ]; then
  log "running benchmarks $SOURCE_ONLY against $URL (scratch: $WORK, $(stat -f -c %T "$WORK"))"
  python3 "$HERE/bench.py" --url "$URL" --reconcile-core "$BIN/reconcile_core" --serve-dir "$BIN/serve_dir" \
    --nginx /usr/sbin/nginx --work "$WORK" --only "$SOURCE_ONLY" "${B4_ARGS[@]}"
fi
if want b3 || want b6; then
  log "B3/B6: building kluctl (release; B3 also the render_core example); kustomize (and B3's Jinja2 venv) from servers.sh install"
  "$SERVERS" install >/dev/null || die "servers.sh install failed"
  EXTRA_BUILD=()
  if want b3; then EXTRA_BUILD=(-p kluctl-engine --example render_core); fi
  (cd "$ROOT" && $CARGO build -q --release -p kluctl --bin kluctl "${EXTRA_BUILD[@]}") \
    || die "cargo build --release of kluctl failed"
fi
if want b3; then
  python3 "$HERE/b3.py" --kluctl "$TARGET_DIR/release/kluctl" --render-core "$BIN/render_core" \
    --kustomize "$KG_CACHE/tools/bin/kustomize" --python "$KG_CACHE/venv-jinja/bin/python" --work "$WORK"
fi
if want b6; then
  log "B6: the cluster of make e2e-up"
  python3 "$HERE/b6.py" --kluctl "$TARGET_DIR/release/kluctl" --kustomize "$KG_CACHE/tools/bin/kustomize" --work "$WORK"
fi
if want b7 || want b8; then
  log "B7/B8: building source-controller and kluctl-controller (release); the git servers of make e2e-up"
  (cd "$ROOT" && $CARGO build -q --release -p source-controller --bin source-controller -p kluctl-controller --bin kluctl-controller) \
    || die "cargo build --release of the controllers failed"
  CONTROLLERS=(--source-controller "$TARGET_DIR/release/source-controller" --kluctl-controller "$TARGET_DIR/release/kluctl-controller" --kustomize "$KG_CACHE/tools/bin/kustomize")
fi
if want b7; then
  log "B7: N=${B7_N:-1000} GitRepositories + KluctlDeployments on the cluster of make e2e-up"
  python3 "$HERE/b7.py" "${CONTROLLERS[@]}" --work "$WORK" --n "${B7_N:-1000}"
fi
if want b8; then
  log "B8: git push -> object latency on the cluster of make e2e-up"
  python3 "$HERE/b8.py" "${CONTROLLERS[@]}" --work "$WORK"
fi
if want b9; then
  log "B9: building kluctl-controller and the notify_load example (release); the cluster of make e2e-up"
  (cd "$ROOT" && $CARGO build -q --release -p kluctl-controller --bin kluctl-controller --example notify_load) \
    || die "cargo build --release of kluctl-controller / notify_load failed"
  python3 "$HERE/b9.py" --kluctl-controller "$TARGET_DIR/release/kluctl-controller" --load "$BIN/notify_load" --work "$WORK"
fi
if want b10; then
  log "B10: building kluctl (release); chromium + chromium-driver from servers.sh install; the cluster of make e2e-up"
  "$SERVERS" install >/dev/null || die "servers.sh install failed"
  (cd "$ROOT" && $CARGO build -q --release -p kluctl --bin kluctl) || die "cargo build --release of kluctl failed"
  python3 "$HERE/b10.py" --kluctl "$TARGET_DIR/release/kluctl" --work "$WORK"
fi
echo
echo "scratch: $WORK ($(stat -f -c %T "$WORK")); git repo: $E2E_STATE/git/repos/$REPO_NAME.git via lighttpd + git http-backend"
echo "machine: $(nproc) cores, $(uname -m), $(git --version), $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "make bench: done in $(( $(date +%s) - T0 ))s"
