#!/usr/bin/env bash
# cluster.sh — a REAL kube-apiserver v1.20.2 + kube-controller-manager + etcd 3.4 on 127.0.0.1, built from
# Debian packages, plus (optional, "hybrid") upstream apiextensions-apiserver v1.36 aggregated behind it so that
# CRDs get CEL (x-kubernetes-validations) enforcement. Adapted from the proven recipe in
# shared/reference/local-cluster (install.sh / start.sh / NOTES.md).
#
#   cluster.sh install            fetch + build into $KG_CACHE/kube-local (idempotent; no-op when built)
#   cluster.sh start              PKI (once), etcd, kube-apiserver, kcm, [apiextensions-apiserver]; wait ready
#   cluster.sh stop               stop by pid files, keep certs + etcd data
#   cluster.sh status             running/stopped per component + readyz
#   cluster.sh clean              stop, delete the cluster state dir and the etcd data
#   cluster.sh apply-crds DIR [--no-cel-dir DIR2]
#        install every CRD manifest (*.yaml|*.yml|*.json) in DIR:
#        - hybrid running: into apiextensions-apiserver v1.36 (CEL enforced) + one APIService per served
#          group/version in kube-apiserver; waits until each APIService is Available and each group is
#          discoverable through the main endpoint
#        - else: server-side apply into kube-apiserver 1.20 of DIR2's CRDs (the caller's CEL-free variant,
#          e.g. `cargo run -q -p gitops-api --bin crdgen -- --no-cel --out DIR2`); any x-kubernetes-validations
#          still present are stripped (1.20 rejects the field under SSA). Waits for condition Established.
#        Prints which mode was used and writes E2E_CEL=1|0 into $E2E_STATE/env.sh.
#
# Ports (127.0.0.1): etcd 12379 (peer 12380), kube-apiserver 16443, apiextensions-apiserver 17443.
#
# Environment (all optional):
#   KG_CACHE, E2E_STATE     see lib.sh
#   E2E_HYBRID=0            neither build nor start the v1.36 apiextensions-apiserver
#   E2E_HYBRID_RETRY=1      retry a hybrid build that failed before (failures are recorded and not retried,
#                           so warm runs stay offline and fast)
#   E2E_FAST_STOP=1         stop with SIGKILL
#   E2E_KEEP_BUILD=1        keep the Go build tree/cache after install (~2.5 GiB; fast rebuilds)
#   READY_TIMEOUT           seconds to wait for kube-apiserver /readyz (default 120)
#   ETCD_DATA_DIR           default /dev/shm/kluctl-gitops-e2e-etcd-<hash of state dir> (tmpfs: fsync is free)
#   APISERVER_EXTRA_ARGS / ETCD_EXTRA_ARGS / KCM_EXTRA_ARGS / APIEXT_EXTRA_ARGS   appended verbatim
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE=$KG_CACHE/kube-local
BIN=$CACHE/bin
HYBRID=${E2E_HYBRID:-1}

STATE=$E2E_STATE/cluster
PKI=$STATE/pki
LOGS=$STATE/logs
RUN=$STATE/run
ETCD_PORT=12379
ETCD_PEER_PORT=12380
APISERVER_PORT=16443
APIEXT_PORT=17443
READY_TIMEOUT=${READY_TIMEOUT:-120}
SERVICE_CIDR=10.0.0.0/24
SA_ISSUER=https://kubernetes.default.svc.cluster.local
URL=https://127.0.0.1:$APISERVER_PORT
APIEXT_URL=https://127.0.0.1:$APIEXT_PORT
COMPONENTS="kube-apiserver kube-controller-manager kubectl"
APIEXT_FAILED=$CACHE/apiext.failed

# ======================================================================================= install
# What it uses (all from the Debian mirror this system's apt is configured with, Debian 12 "bookworm"):
#   - source package  kubernetes 1.20.5+really1.20.2-1.1+deb12u1  (full upstream v1.20.2 tree incl. vendor/)
#   - binary packages golang-1.19-go + golang-1.19-src            (Go toolchain, extracted privately)
#   - binary package  golang-github-modern-go-reflect2-dev 1.0.2   (replaces vendored reflect2 1.0.1,
#                                                                   which is memory-unsafe on Go >= 1.18)
#   - binary packages etcd-server + etcd-client 3.4.23              (etcd, etcdctl)
#   - hybrid: Debian sid golang-k8s-apiextensions-apiserver-dev + its golang-*-dev closure + sid's Go
# Nothing is installed into the system: debs are unpacked with dpkg -x into the cache dir, and apt uses a
# private state dir (no change to /etc/apt or /var/lib/apt). debs/ and src/ are kept: a rebuild is offline.
K8S_SRC_PKG=kubernetes
K8S_SRC_VER=1.20.5+really1.20.2-1.1+deb12u1     # bookworm; upstream v1.20.2
K8S_UPSTREAM=1.20.2
K8S_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
K8S_BUILD_DATE=2021-01-13T13:20:00Z
GO_PKGS="golang-1.19-go golang-1.19-src"
GO_VER=1.19
OTHER_DEBS="etcd-server etcd-client golang-github-modern-go-reflect2-dev"
APT=$CACHE/apt
DEBS=$CACHE/debs
SRC=$CACHE/src
ROOT=$CACHE/root          # dpkg -x target
BUILD=$CACHE/build
GOPATH_DIR=$BUILD/gopath
TREE=$BUILD/kubernetes-$K8S_UPSTREAM

step_t0=0
step() { step_t0=$(date +%s); log ">>> $*"; }
done_step() { log "<<< $1 took $(( $(date +%s) - step_t0 ))s"; }

core_built() {
  local c; for c in $COMPONENTS etcd etcdctl; do [ -x "$BIN/$c" ] || return 1; done
}
apiext_settled() {  # built, or not wanted, or failed before (and no retry asked)
  [ "$HYBRID" = 0 ] || [ -x "$BIN/apiextensions-apiserver" ] || { [ -f "$APIEXT_FAILED" ] && [ "${E2E_HYBRID_RETRY:-0}" != 1 ]; }
}

cmd_install() {
  local t0; t0=$(date +%s)
  for t in apt-get dpkg dpkg-deb tar curl patch openssl python3; do command -v $t >/dev/null || die "required tool '$t' not found"; done
  [ "$(uname -m)" = x86_64 ] || die "only amd64 is scripted (got $(uname -m))"
  if core_built && apiext_settled; then
    log "already built in $BIN: $("$BIN/kube-apiserver" --version)$([ -x "$BIN/apiextensions-apiserver" ] && echo ", apiextensions-apiserver $(sed -n 's/^apiextensions-apiserver: \([^ ]*\).*/\1/p' "$CACHE/VERSIONS.apiext" 2>/dev/null)")"
    [ -f "$APIEXT_FAILED" ] && [ "$HYBRID" != 0 ] && log "hybrid apiextensions-apiserver unavailable (build failed earlier: $(head -1 "$APIEXT_FAILED")); E2E_HYBRID_RETRY=1 $0 install retries"
    return 0
  fi
  mkdir -p "$CACHE" "$DEBS" "$SRC" "$ROOT" "$BIN"
  core_built || install_core
  if ! apiext_settled; then
    rm -f "$APIEXT_FAILED"
    step "hybrid: apiextensions-apiserver v1.36 from Debian sid (optional; log $CACHE/apiext-install.log)"
    if "$SCRIPTS_DIR/cluster.sh" _install-apiext >"$CACHE/apiext-install.log" 2>&1; then
      done_step "hybrid apiextensions-apiserver ($(cat "$CACHE/VERSIONS.apiext"))"
    else
      { echo "$(date -Is) $(grep -m1 'ERROR' "$CACHE/apiext-install.log" || tail -1 "$CACHE/apiext-install.log")"; } > "$APIEXT_FAILED"
      tail -15 "$CACHE/apiext-install.log" >&2
      log "WARNING: hybrid build failed; continuing WITHOUT it (CRDs will go into kube-apiserver 1.20, CEL not enforced)."
      log "         recorded in $APIEXT_FAILED; retry with E2E_HYBRID_RETRY=1 $0 install"
    fi
  fi
  write_versions
  if [ "${E2E_KEEP_BUILD:-0}" != 1 ]; then
    # keep only the downloads (debs/, src/: enough to rebuild offline) and bin/
    chmod -R u+w "$BUILD" "$CACHE/sidroot" 2>/dev/null || true
    rm -rf "$BUILD" "$ROOT" "$APT" "$CACHE/sidroot"
  fi
  log "install done in $(( $(date +%s) - t0 ))s; binaries in $BIN; cache size $(du -sh "$CACHE" | cut -f1)"
}

write_versions() {
  {
    echo "kube-apiserver: $("$BIN/kube-apiserver" --version 2>&1)"
    echo "etcd: $("$BIN/etcd" --version | head -1)"
    if [ -x "$BIN/apiextensions-apiserver" ] && [ -f "$CACHE/VERSIONS.apiext" ]; then cat "$CACHE/VERSIONS.apiext"
    elif [ -f "$APIEXT_FAILED" ]; then echo "apiextensions-apiserver: unavailable (build failed: $(head -1 "$APIEXT_FAILED"))"
    else echo "apiextensions-apiserver: not built (E2E_HYBRID=0)"; fi
  } > "$CACHE/VERSIONS.e2e"
  sed 's/^/    /' "$CACHE/VERSIONS.e2e" >&2
}

install_core() {
  aptcfg "$APT/bookworm" bookworm; local AO_BW=("${AO[@]}") bw_updated=0 p
  ensure_bw_lists() {  # lazily: only when something must be downloaded
    [ "$bw_updated" = 1 ] && return 0
    step "apt-get update (private bookworm lists in $APT/bookworm)"
    apt-get "${AO_BW[@]}" -q --error-on=any update >/dev/null || die "apt-get update failed (is the Debian mirror in /etc/apt reachable?)"
    bw_updated=1; done_step "apt update"
  }
  step "download binary debs (if missing): $GO_PKGS $OTHER_DEBS"
  cd "$DEBS"
  for p in $GO_PKGS $OTHER_DEBS; do
    if ! compgen -G "${p}_*.deb" >/dev/null; then
      ensure_bw_lists
      apt-get "${AO_BW[@]}" -q download "$p" || die "apt-get download $p failed"
    fi
  done
  done_step "download debs"

  step "download source package $K8S_SRC_PKG=$K8S_SRC_VER (bookworm; ~34 MB)"
  cd "$SRC"
  if ! compgen -G "kubernetes_*.orig.tar.gz" >/dev/null || ! compgen -G "kubernetes_*.debian.tar.xz" >/dev/null; then
    ensure_bw_lists
    if ! apt-get "${AO_BW[@]}" -q source --download-only "$K8S_SRC_PKG=$K8S_SRC_VER"; then
      log "pinned revision not available; trying bookworm's current $K8S_SRC_PKG source"
      apt-get "${AO_BW[@]}" -q source --download-only "$K8S_SRC_PKG" || die "apt-get source $K8S_SRC_PKG failed"
    fi
    compgen -G "kubernetes_*+really${K8S_UPSTREAM}.orig.tar.gz" >/dev/null || compgen -G "kubernetes_${K8S_UPSTREAM}*.orig.tar.gz" >/dev/null \
      || die "downloaded kubernetes source is not upstream $K8S_UPSTREAM: $(ls)"
  fi
  done_step "download source"

  step "unpack debs into $ROOT"
  local d stamp
  for d in "$DEBS"/*.deb; do
    stamp="$ROOT/.x.$(basename "$d")"
    [ -f "$stamp" ] || { dpkg -x "$d" "$ROOT"; touch "$stamp"; }
  done
  cp -f "$ROOT/usr/bin/etcd" "$ROOT/usr/bin/etcdctl" "$BIN/"
  export GOROOT=$ROOT/usr/lib/go-$GO_VER
  export PATH=$GOROOT/bin:$PATH
  go version >/dev/null 2>&1 || die "extracted Go toolchain does not run"
  done_step "unpack"

  if [ ! -f "$TREE/.prepared" ]; then
    step "unpack kubernetes v$K8S_UPSTREAM source, apply Debian patches, swap reflect2"
    rm -rf "$TREE"; mkdir -p "$BUILD"
    tar -xzf "$SRC"/kubernetes_*.orig.tar.gz -C "$BUILD"
    [ -d "$TREE" ] || die "unexpected tarball layout (no $TREE)"
    tar -xJf "$SRC"/kubernetes_*.debian.tar.xz -C "$TREE"
    if [ -f "$TREE/debian/patches/series" ]; then
      while read -r p; do
        case "$p" in ''|\#*) continue;; esac
        patch -d "$TREE" -p1 -s < "$TREE/debian/patches/$p" || die "Debian patch $p failed"
      done < "$TREE/debian/patches/series"
    fi
    # vendored reflect2 v1.0.1 corrupts memory with Go >= 1.18 (mapiterinit ABI change); use Debian's 1.0.2
    rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
    cp -r "$ROOT/usr/share/gocode/src/github.com/modern-go/reflect2" "$TREE/vendor/github.com/modern-go/reflect2"
    rm -f "$TREE/vendor/github.com/modern-go/reflect2/go.mod"
    mkdir -p "$GOPATH_DIR/src/k8s.io"; ln -sfn "$TREE" "$GOPATH_DIR/src/k8s.io/kubernetes"
    done_step "prepare tree"
  fi
  # GOPATH mode, the way Debian's debian/rules builds it: module mode with -mod=vendor fails with Go 1.19
  # ("updates to go.mod needed, disabled by -mod=vendor").
  export GOPATH=$GOPATH_DIR GO111MODULE=off GOFLAGS="" CGO_ENABLED=0 GOPROXY=off GOTOOLCHAIN=local GOCACHE=$BUILD/gocache
  cd "$GOPATH_DIR/src/k8s.io/kubernetes"
  if [ ! -f "$TREE/.prepared" ]; then
    # The release tarball does not contain pkg/generated/openapi/zz_generated.openapi.go (upstream's
    # Makefile.generated_files makes it at build time). Reproduce that rule: same input dirs, same tool.
    step "generate pkg/generated/openapi with vendored openapi-gen"
    go build -o "$BUILD/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen || die "building openapi-gen failed"
    local dirs in
    dirs=$( { find pkg cmd plugin -type f -name '*.go'; find -L vendor/k8s.io -type f -name '*.go'; } \
      | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
      | xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' | xargs -n1 dirname | LC_ALL=C sort -u )
    in=$(echo "$dirs" | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
    "$BUILD/openapi-gen" -i "$in" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
      -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$BUILD/openapi-violations.report" \
      || die "openapi-gen failed"
    [ -s pkg/generated/openapi/zz_generated.openapi.go ] || die "openapi-gen produced nothing"
    # identical to upstream's list = the input set matches upstream's generation rule
    diff -q "$BUILD/openapi-violations.report" api/api-rules/violation_exceptions.list >/dev/null \
      || log "WARNING: API-rule violation report differs from upstream's list"
    touch "$TREE/.prepared"
    done_step "openapi-gen"
  fi
  # version ldflags: /version must report a real v1.20.2 (clients parse it)
  local LD="-s -w" c
  for p in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
    LD="$LD -X $p.gitVersion=v$K8S_UPSTREAM -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitCommit=$K8S_GIT_COMMIT"
    LD="$LD -X $p.gitTreeState=clean -X $p.buildDate=$K8S_BUILD_DATE"
  done
  for c in $COMPONENTS; do
    [ -x "$BIN/$c" ] && continue
    step "go build ./cmd/$c (2 cores: expect minutes)"
    go build -trimpath -ldflags "$LD" -o "$BIN/$c.tmp" "./cmd/$c" || die "build of $c failed"
    mv -f "$BIN/$c.tmp" "$BIN/$c"
    done_step "build $c"
  done
  cd /
}

# Upstream k8s.io/apiextensions-apiserver from Debian sid's golang-k8s-*-dev packages (sources of the staging
# modules) + sid's Go, GOPATH mode. Runs as its own process so that any failure is contained.
install_apiext() {
  local SIDROOT=$CACHE/sidroot SIDDEBS=$DEBS/sid GOPKG closure need p d SGOROOT AEV
  aptcfg "$APT/sid" sid; local AO_SID=("${AO[@]}")
  mkdir -p "$SIDDEBS"
  if [ ! -f "$SIDDEBS/.closure" ]; then
    step "sid: apt-get update + dependency closure of golang-k8s-apiextensions-apiserver-dev"
    apt-get "${AO_SID[@]}" -q --error-on=any update >/dev/null || die "apt-get update (sid) failed"
    GOPKG=$(apt-cache "${AO_SID[@]}" depends golang-go | awk '/Depends: golang-[0-9.]+-go$/{print $2; exit}')
    [ -n "$GOPKG" ] || die "cannot find sid's golang-X.Y-go"
    closure=$(apt-cache "${AO_SID[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
                --no-breaks --no-replaces --no-enhances golang-k8s-apiextensions-apiserver-dev \
              | grep -E '^golang-[a-z0-9.+-]*-dev$' | sort -u)
    echo "$(echo "$closure" | wc -l) -dev packages + $GOPKG"
    need=""
    for p in $closure "$GOPKG" "${GOPKG%-go}-src"; do compgen -G "$SIDDEBS/${p}_*.deb" >/dev/null || need="$need $p"; done
    # shellcheck disable=SC2086
    [ -z "$need" ] || (cd "$SIDDEBS" && apt-get "${AO_SID[@]}" -q download $need >/dev/null) || die "sid download failed"
    echo "$closure $GOPKG ${GOPKG%-go}-src" > "$SIDDEBS/.closure"
    done_step "sid closure + download"
  fi
  step "sid: unpack + go build k8s.io/apiextensions-apiserver (GOPATH mode)"
  rm -rf "$SIDROOT"; mkdir -p "$SIDROOT"
  for d in "$SIDDEBS"/*.deb; do dpkg -x "$d" "$SIDROOT"; done
  SGOROOT=$(find "$SIDROOT/usr/lib" -maxdepth 1 -name 'go-1.*' | sort -V | tail -1)
  [ -n "$SGOROOT" ] || die "no Go toolchain in the sid debs"
  AEV=$(dpkg-deb -f "$(find "$SIDDEBS" -name 'golang-k8s-apiextensions-apiserver-dev_*.deb' | sort -V | tail -1)" Version | sed 's/-[^-]*$//; s/^0\./1./')
  ( export GOROOT=$SGOROOT PATH=$SGOROOT/bin:$PATH GOPATH=$SIDROOT/usr/share/gocode GO111MODULE=off GOFLAGS="" \
           CGO_ENABLED=0 GOPROXY=off GOTOOLCHAIN=local GOCACHE=$CACHE/build/gocache-sid
    cd "$GOPATH/src/k8s.io/apiextensions-apiserver"
    v=k8s.io/component-base/version
    go build -trimpath -ldflags "-s -w -X $v.gitVersion=v$AEV -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$AEV" | cut -d. -f2)" \
      -o "$BIN/apiextensions-apiserver.tmp" . ) || die "apiextensions-apiserver build failed"
  mv -f "$BIN/apiextensions-apiserver.tmp" "$BIN/apiextensions-apiserver"
  echo "apiextensions-apiserver: v$AEV (Debian sid golang-k8s-apiextensions-apiserver-dev, $(basename "$SGOROOT"))" > "$CACHE/VERSIONS.apiext"
  [ "${E2E_KEEP_BUILD:-0}" = 1 ] || { chmod -R u+w "$SIDROOT" 2>/dev/null || true; rm -rf "$SIDROOT" "$CACHE/build/gocache-sid" "$APT/sid"; }
  done_step "apiextensions-apiserver v$AEV"
}

# ======================================================================================= start
if [ -z "${ETCD_DATA_DIR:-}" ]; then
  if [ -f "$RUN/etcd-data-dir" ]; then ETCD_DATA_DIR=$(cat "$RUN/etcd-data-dir")
  elif [ -d /dev/shm ] && [ -w /dev/shm ]; then  # tmpfs: etcd fsyncs are free; unique per state dir
    ETCD_DATA_DIR=/dev/shm/kluctl-gitops-e2e-etcd-$(printf '%s' "$(realpath -m "$STATE")" | md5sum | cut -c1-10)
  else ETCD_DATA_DIR=$STATE/etcd-data; fi
fi

gen_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  [ -f "$PKI/.done" ] && return 0
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  log "generating CA, serving cert, client certs, service-account keys, tokens in $PKI"
  (
  cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=kluctl-gitops-e2e-kube-ca" 2>/dev/null
  cat > san.cnf <<SAN
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment
SAN
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > client.cnf
  mk() { # name subj extfile
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 -extfile "$3" 2>/dev/null
    rm -f "$1.csr"
  }
  mk apiserver "/CN=kube-apiserver" san.cnf
  mk admin "/O=system:masters/CN=kube-admin" client.cnf
  # kcm runs every controller under one identity (no --use-service-account-credentials), so give it
  # system:masters; with only the bootstrap role system:kube-controller-manager it is denied.
  mk kcm "/O=system:masters/CN=system:kube-controller-manager" client.cnf
  mk dev "/O=dev-group/CN=dev-user" client.cnf
  # aggregation layer (front proxy) — always configured, so APIServices work — and the serving cert of the
  # aggregated apiextensions-apiserver (reached as ExternalName Service apiext136.default → localhost)
  openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj "/CN=front-proxy-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -out fp.csr -subj "/CN=front-proxy-client" 2>/dev/null
  openssl x509 -req -in fp.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial -out front-proxy-client.crt -days 3650 -extfile client.cnf 2>/dev/null
  rm -f fp.csr
  printf 'subjectAltName=DNS:apiext136.default.svc,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > apiext-san.cnf
  mk apiext "/CN=apiext136" apiext-san.cnf
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  openssl rand -hex 24 > admin.token
  openssl rand -hex 24 > dev.token
  # token,user,uid,"group1,group2"
  { echo "$(cat admin.token),kube-admin-token,uid-admin,\"system:masters\""
    echo "$(cat dev.token),dev-user,uid-dev,\"dev-group\""; } > tokens.csv
  chmod 600 ./*.key tokens.csv ./*.token
  touch .done
  )
}

write_kubeconfigs() {
  local cadata; cadata=$(base64 -w0 "$PKI/ca.crt")
  kc() { # file user cred-lines...  (credentials embedded: the file can be copied into a Secret as is)
    local f=$1 user=$2; shift 2
    ( umask 077
    {
      echo "apiVersion: v1"
      echo "kind: Config"
      echo "clusters:"
      echo "- name: e2e"
      echo "  cluster:"
      echo "    server: $URL"
      echo "    certificate-authority-data: $cadata"
      echo "users:"
      echo "- name: $user"
      echo "  user:"
      for l in "$@"; do echo "    $l"; done
      echo "contexts:"
      echo "- name: e2e"
      echo "  context: {cluster: e2e, user: $user}"
      echo "current-context: e2e"
    } > "$f" )
  }
  kc "$STATE/admin.kubeconfig" kube-admin "client-certificate-data: $(base64 -w0 "$PKI/admin.crt")" "client-key-data: $(base64 -w0 "$PKI/admin.key")"
  kc "$STATE/admin-token.kubeconfig" kube-admin-token "token: $(cat "$PKI/admin.token")"
  kc "$STATE/dev.kubeconfig" dev-user "token: $(cat "$PKI/dev.token")"
  kc "$STATE/dev-cert.kubeconfig" dev-user "client-certificate-data: $(base64 -w0 "$PKI/dev.crt")" "client-key-data: $(base64 -w0 "$PKI/dev.key")"
  kc "$STATE/kcm.kubeconfig" system:kube-controller-manager "client-certificate-data: $(base64 -w0 "$PKI/kcm.crt")" "client-key-data: $(base64 -w0 "$PKI/kcm.key")"
}

kcurl() { curl -fsS --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$PKI/admin.token")" "$@"; }
KUBECTL() { "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" --cache-dir "$STATE/kubectl-cache" "$@"; }

start_etcd() {
  if alive "$RUN" etcd; then log "etcd already running (pid $(cat "$RUN/etcd.pid"))"; return; fi
  port_free "$ETCD_PORT" || die "port $ETCD_PORT busy"
  port_free "$ETCD_PEER_PORT" || die "port $ETCD_PEER_PORT busy"
  mkdir -p "$ETCD_DATA_DIR"; chmod 700 "$ETCD_DATA_DIR"; echo "$ETCD_DATA_DIR" > "$RUN/etcd-data-dir"
  log "starting etcd on 127.0.0.1:$ETCD_PORT (data $ETCD_DATA_DIR)"
  # shellcheck disable=SC2086
  setsid "$BIN/etcd" --name kluctl-gitops-e2e --data-dir "$ETCD_DATA_DIR" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "kluctl-gitops-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes 4294967296 --auto-compaction-mode periodic --auto-compaction-retention 5m \
    --logger zap --log-level warn ${ETCD_EXTRA_ARGS:-} \
    >"$LOGS/etcd.log" 2>&1 < /dev/null &
  echo $! > "$RUN/etcd.pid"
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    alive "$RUN" etcd || { tail -20 "$LOGS/etcd.log" >&2; die "etcd exited"; }
    sleep 0.1
  done
  tail -20 "$LOGS/etcd.log" >&2; die "etcd not healthy after 10s"
}

start_apiserver() {
  if alive "$RUN" kube-apiserver; then log "kube-apiserver already running (pid $(cat "$RUN/kube-apiserver.pid"))"; return; fi
  port_free "$APISERVER_PORT" || die "port $APISERVER_PORT busy"
  log "starting kube-apiserver on $URL"
  # --endpoint-reconciler-type none: the apiserver advertises 127.0.0.1 and Endpoints validation rejects
  # loopback, so the reconciler would log an error every 10 s (the `kubernetes` Service has no endpoints).
  # The requestheader/proxy-client flags configure the aggregation layer (needed for hybrid APIServices).
  # shellcheck disable=SC2086
  setsid "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" --insecure-port 0 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer "$SA_ISSUER" --api-audiences "$SA_ISSUER" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allow-privileged=true --endpoint-reconciler-type none \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --cert-dir "$STATE/apiserver-certs" --profiling=false --v=1 ${APISERVER_EXTRA_ARGS:-} \
    >"$LOGS/kube-apiserver.log" 2>&1 < /dev/null &
  echo $! > "$RUN/kube-apiserver.pid"
}

wait_ready() {
  local t0 deadline
  t0=$(now_ms); deadline=$(( $(date +%s) + READY_TIMEOUT ))
  while :; do
    if kcurl "$URL/readyz" 2>/dev/null | grep -q '^ok'; then
      log "kube-apiserver ready ($(( $(now_ms) - t0 )) ms)"; return 0
    fi
    alive "$RUN" kube-apiserver || { tail -30 "$LOGS/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -30 "$LOGS/kube-apiserver.log" >&2; die "kube-apiserver not ready after ${READY_TIMEOUT}s"; }
    sleep 0.2
  done
}

start_kcm() {
  if alive "$RUN" kube-controller-manager; then log "kube-controller-manager already running"; return; fi
  log "starting kube-controller-manager (no serving ports, leader-elect off)"
  # gives GC, namespace finalization, ReplicaSets/Pods, ServiceAccounts + token Secrets, kube-root-ca.crt
  # shellcheck disable=SC2086
  setsid "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/kcm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 \
    --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
    --controllers '*' --profiling=false --v=1 ${KCM_EXTRA_ARGS:-} \
    >"$LOGS/kube-controller-manager.log" 2>&1 < /dev/null &
  echo $! > "$RUN/kube-controller-manager.pid"
}
check_kcm() {  # kcm dies within a second on config errors; the apiextensions-apiserver start took that second
  hybrid_wanted || sleep 1
  alive "$RUN" kube-controller-manager || { tail -30 "$LOGS/kube-controller-manager.log" >&2; die "kube-controller-manager exited"; }
}

# CRDs applied in hybrid mode earlier (state kept across down/up): wait until their APIServices are
# Available again, or drop the stale E2E_CEL if the apiextensions-apiserver is not running now.
recheck_hybrid_crds() {
  local svcs; svcs=$(KUBECTL get apiservice -l kluctl-gitops-e2e/apiext136=true -o name 2>/dev/null || true)
  [ -n "$svcs" ] || return 0
  if hybrid_running; then
    # shellcheck disable=SC2086
    KUBECTL wait --for=condition=Available $svcs --timeout=60s >/dev/null \
      || log "WARNING: hybrid APIServices not Available: re-run '$0 apply-crds'"
  else
    # unavailable aggregated APIs break discovery for every client (kubectl api-resources, kube-rs, kluctl)
    log "WARNING: CRDs were served by the hybrid apiextensions-apiserver, which is not running now:"
    log "         removing their APIServices ($(echo "$svcs" | sed 's#.*/##' | paste -sd' ' -)); re-run '$0 apply-crds'"
    # shellcheck disable=SC2086
    KUBECTL delete $svcs >/dev/null
    rm -f "$E2E_STATE/env.d/20-crds.sh"
  fi
}

hybrid_wanted() { [ "$HYBRID" != 0 ] && [ -x "$BIN/apiextensions-apiserver" ]; }
hybrid_running() { alive "$RUN" apiextensions-apiserver && kcurl "$APIEXT_URL/readyz" 2>/dev/null | grep -q '^ok'; }

start_apiext() {
  if ! hybrid_wanted; then
    if [ "$HYBRID" = 0 ]; then log "hybrid disabled (E2E_HYBRID=0)"
    else log "no apiextensions-apiserver binary: CRDs will live in kube-apiserver 1.20 (no CEL)"; fi
    return 0
  fi
  if alive "$RUN" apiextensions-apiserver; then log "apiextensions-apiserver already running"; return; fi
  port_free "$APIEXT_PORT" || die "port $APIEXT_PORT busy"
  log "starting apiextensions-apiserver (v1.36, CRDs with CEL) on $APIEXT_URL, etcd prefix /registry-apiext"
  # authn/authz are delegated to kube-apiserver (TokenReview/SubjectAccessReview => its RBAC applies);
  # APF and the admission plugins that need informers of APIs a 1.20 core lacks are switched off
  # (otherwise readyz never goes ok).
  # shellcheck disable=SC2086
  setsid "$BIN/apiextensions-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --etcd-prefix /registry-apiext \
    --bind-address 127.0.0.1 --secure-port "$APIEXT_PORT" \
    --tls-cert-file "$PKI/apiext.crt" --tls-private-key-file "$PKI/apiext.key" \
    --kubeconfig "$STATE/kcm.kubeconfig" \
    --authentication-kubeconfig "$STATE/kcm.kubeconfig" --authorization-kubeconfig "$STATE/kcm.kubeconfig" \
    --client-ca-file "$PKI/ca.crt" --enable-priority-and-fairness=false \
    --disable-admission-plugins ValidatingAdmissionPolicy,MutatingAdmissionPolicy,ValidatingAdmissionWebhook,MutatingAdmissionWebhook \
    --cert-dir "$STATE/apiext-certs" --v=1 ${APIEXT_EXTRA_ARGS:-} \
    >"$LOGS/apiextensions-apiserver.log" 2>&1 < /dev/null &
  echo $! > "$RUN/apiextensions-apiserver.pid"
  local i
  for ((i = 0; i < 300; i++)); do
    kcurl "$APIEXT_URL/readyz" 2>/dev/null | grep -q '^ok' && { log "apiextensions-apiserver ready"; return 0; }
    alive "$RUN" apiextensions-apiserver || { tail -30 "$LOGS/apiextensions-apiserver.log" >&2; die "apiextensions-apiserver exited"; }
    sleep 0.2
  done
  tail -30 "$LOGS/apiextensions-apiserver.log" >&2; die "apiextensions-apiserver not ready after 60s"
}

server_version() {  # $1 base URL -> gitVersion
  kcurl "$1/version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])'
}

write_cluster_env() {
  local kv hyb=0; kv=$(server_version "$URL")
  hybrid_running && hyb=1
  write_env_fragment 10-cluster <<EOF
export KUBECONFIG=$(q "$STATE/admin.kubeconfig")
export E2E_KUBECONFIG_ADMIN=$(q "$STATE/admin.kubeconfig")
export E2E_KUBECONFIG_ADMIN_TOKEN=$(q "$STATE/admin-token.kubeconfig")
export E2E_KUBECONFIG_DEV=$(q "$STATE/dev.kubeconfig")
export E2E_KUBECONFIG_DEV_CERT=$(q "$STATE/dev-cert.kubeconfig")
export E2E_APISERVER_URL=$URL
export E2E_CA=$(q "$PKI/ca.crt")
export E2E_ADMIN_TOKEN=$(q "$(cat "$PKI/admin.token")")
export E2E_DEV_TOKEN=$(q "$(cat "$PKI/dev.token")")
export E2E_BIN=$(q "$BIN")
export E2E_KUBECTL=$(q "$BIN/kubectl")
export E2E_KUBE_VERSION=$kv
export E2E_HYBRID_RUNNING=$hyb
export E2E_APIEXT_URL=$([ "$hyb" = 1 ] && echo "$APIEXT_URL")
case ":\$PATH:" in *":$BIN:"*) ;; *) export PATH=$(q "$BIN"):\$PATH ;; esac
EOF
}

cmd_start() {
  local b; for b in etcd kube-apiserver kube-controller-manager kubectl; do [ -x "$BIN/$b" ] || die "$BIN/$b missing: run '$0 install' first"; done
  command -v curl >/dev/null || die "curl not found"
  mkdir -p "$STATE" "$LOGS" "$RUN"; chmod 700 "$STATE"
  gen_pki
  write_kubeconfigs
  start_etcd
  start_apiserver
  wait_ready
  start_kcm
  start_apiext
  check_kcm
  recheck_hybrid_crds
  write_cluster_env
  log "up: $URL ($(server_version "$URL"))$(hybrid_running && echo " + apiextensions-apiserver $(server_version "$APIEXT_URL") on $APIEXT_URL")"
}

cmd_stop() {
  # the API servers and kcm together (each needs 2-3 s for a graceful shutdown), etcd last
  stop_pids "$RUN" 15 apiextensions-apiserver kube-controller-manager kube-apiserver
  stop_pid "$RUN" etcd 15
}

cmd_status() {
  local n rc=0
  for n in etcd kube-apiserver kube-controller-manager apiextensions-apiserver; do
    if alive "$RUN" "$n"; then echo "$n: running (pid $(cat "$RUN/$n.pid"))"
    elif [ "$n" = apiextensions-apiserver ] && ! hybrid_wanted; then echo "$n: not used"
    else echo "$n: stopped"; rc=3; fi
  done
  if [ -f "$PKI/admin.token" ] && kcurl "$URL/readyz" >/dev/null 2>&1; then echo "readyz: ok ($URL)"; else echo "readyz: not ready"; rc=3; fi
  return $rc
}

cmd_clean() {
  cmd_stop
  if [ -f "$RUN/etcd-data-dir" ]; then rm -rf "$(cat "$RUN/etcd-data-dir")"; log "removed etcd data $(cat "$RUN/etcd-data-dir")"; fi
  rm -rf "$STATE" "$E2E_STATE/env.d/10-cluster.sh" "$E2E_STATE/env.d/20-crds.sh"
  [ -d "$E2E_STATE" ] && assemble_env
  log "removed $STATE"
}

# ======================================================================================= apply-crds
# crd_prepare OUTDIR STRIP FILES...: YAML/JSON manifests -> OUTDIR/crd-N.json (+ OUTDIR/apisvc-*.json and
# OUTDIR/crds.tsv "name group plural versions"). Parsing is client-side (kubectl --dry-run=client).
crd_prepare() {
  local out=$1 strip=$2 f i=0; shift 2
  for f in "$@"; do
    KUBECTL create --dry-run=client --validate=false -o json -f "$f" > "$out/in-$i.json" || die "cannot parse $f"
    i=$((i + 1))
  done
  python3 - "$out" "$strip" "$PKI/ca.crt" "$APIEXT_PORT" <<'PY'
import json, sys, os, base64, glob
out, strip, ca, port = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
cab = base64.b64encode(open(ca, "rb").read()).decode()
n = stripped = 0
tsv = open(os.path.join(out, "crds.tsv"), "w")
def strip_cel(o):
    global stripped
    if isinstance(o, dict):
        if "x-kubernetes-validations" in o:
            del o["x-kubernetes-validations"]; stripped += 1
        for v in o.values(): strip_cel(v)
    elif isinstance(o, list):
        for v in o: strip_cel(v)
for p in sorted(glob.glob(os.path.join(out, "in-*.json")), key=lambda s: int(s.rsplit("-", 1)[1][:-5])):
    text, pos, objs = open(p).read(), 0, []
    dec = json.JSONDecoder()
    while True:  # kubectl prints one JSON document per manifest, concatenated
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        o, pos = dec.raw_decode(text, pos)
        objs.extend(o["items"] if o.get("kind") == "List" else [o])
    for it in objs:
        if it.get("kind") != "CustomResourceDefinition":
            continue
        it.pop("status", None); it["metadata"].pop("creationTimestamp", None)
        if strip: strip_cel(it)
        json.dump(it, open(os.path.join(out, "crd-%03d.json" % n), "w")); n += 1
        g = it["spec"]["group"]; served = [v["name"] for v in it["spec"]["versions"] if v.get("served", True)]
        tsv.write("%s\t%s\t%s\t%s\n" % (it["metadata"]["name"], g, it["spec"]["names"]["plural"], ",".join(served)))
        for v in served:
            svc = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                   "metadata": {"name": "%s.%s" % (v, g), "labels": {"kluctl-gitops-e2e/apiext136": "true"}},
                   "spec": {"group": g, "version": v, "caBundle": cab,
                            "service": {"namespace": "default", "name": "apiext136", "port": port},
                            "groupPriorityMinimum": 1000, "versionPriority": 15}}
            json.dump(svc, open(os.path.join(out, "apisvc-%s.%s.json" % (v, g)), "w"))
print("%d %d" % (n, stripped))
PY
}

# wait_discoverable TSV TIMEOUT_S: every "plural.group" of the TSV is listed by `kubectl api-resources`
# through the main endpoint (exit status ignored: kubectl also fails when some OTHER aggregated API is down)
wait_discoverable() {
  local tsv=$1 t=$2 i out missing name g plural vers
  for ((i = 0; i < t * 4; i++)); do
    out=$(KUBECTL api-resources -o name 2>/dev/null || true)
    missing=""
    while IFS=$'\t' read -r name g plural vers; do
      grep -qx "$plural.$g" <<<"$out" || missing="$missing $plural.$g"
    done < "$tsv"
    [ -z "$missing" ] && return 0
    sleep 0.25
  done
  die "not discoverable through $URL after ${t}s (kubectl api-resources):$missing"
}

cmd_apply_crds() {
  local dir="" nocel="" files=() t0 tmp mode
  while [ $# -gt 0 ]; do
    case $1 in
      --no-cel-dir) nocel=${2:?--no-cel-dir needs a directory}; shift 2 ;;
      -*) die "unknown flag $1" ;;
      *) [ -z "$dir" ] || die "only one CRD directory"; dir=$1; shift ;;
    esac
  done
  [ -n "$dir" ] || die "usage: $0 apply-crds DIR [--no-cel-dir DIR]"
  [ -d "$dir" ] || die "no such directory: $dir"
  kcurl "$URL/readyz" >/dev/null 2>&1 || die "kube-apiserver not running ('$0 start')"
  t0=$(now_ms); tmp=$(mktemp -d)
  if hybrid_running; then mode=hybrid; else mode=core
    if [ -n "$nocel" ]; then [ -d "$nocel" ] || die "no such directory: $nocel"; dir=$nocel
    else log "no --no-cel-dir given: stripping x-kubernetes-validations from $dir myself"; fi
  fi
  mapfile -t files < <(find "$dir" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | LC_ALL=C sort)
  [ ${#files[@]} -gt 0 ] || die "no *.yaml/*.yml/*.json in $dir"
  local counts n stripped
  counts=$(crd_prepare "$tmp" "$([ "$mode" = core ] && echo 1 || echo 0)" "${files[@]}") || die "reading the CRD manifests failed"
  read -r n stripped <<<"$counts"
  [ "$n" -gt 0 ] || die "no CustomResourceDefinition in $dir"
  local name g plural vers v c a
  if [ "$mode" = hybrid ]; then
    # CRDs go into the 1.36 server by SSA over curl (kubectl cannot talk to it directly: it has no /api);
    # clients then reach the CRs through the ONE main endpoint via the APIServices.
    # the same CRD must not ALSO exist in 1.20: its auto-registered Local APIService would win
    local core_crds; core_crds=$(KUBECTL get crd -o name 2>/dev/null || true)
    while IFS=$'\t' read -r name g plural vers; do
      if grep -qx "customresourcedefinition.apiextensions.k8s.io/$name" <<<"$core_crds"; then
        log "CRD $name exists in kube-apiserver 1.20 (it would shadow the aggregated API): deleting it there"
        KUBECTL delete crd "$name" --wait=true --timeout=60s >/dev/null
      fi
    done < "$tmp/crds.tsv"
    local idx=0
    for c in "$tmp"/crd-*.json; do  # crd-NNN.json is line NNN+1 of crds.tsv
      idx=$((idx + 1)); name=$(sed -n "${idx}p" "$tmp/crds.tsv" | cut -f1)
      local code
      code=$(curl -sS -o "$tmp/resp" -w '%{http_code}' --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$PKI/admin.token")" \
        -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @"$c" \
        "$APIEXT_URL/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$name?fieldManager=kluctl-gitops-e2e&force=true")
      case "$code" in 200|201) ;; *) cat "$tmp/resp" >&2; die "CRD $name: HTTP $code from apiextensions-apiserver";; esac
    done
    printf '{"apiVersion":"v1","kind":"Service","metadata":{"name":"apiext136","namespace":"default"},"spec":{"type":"ExternalName","externalName":"localhost"}}' > "$tmp/svc.json"
    KUBECTL apply -f "$tmp/svc.json" >/dev/null
    for a in "$tmp"/apisvc-*.json; do KUBECTL apply -f "$a" >/dev/null || die "APIService $(basename "$a") failed"; done
    local svcs=()
    while IFS=$'\t' read -r name g plural vers; do
      for v in ${vers//,/ }; do svcs+=("apiservice/$v.$g"); done
    done < "$tmp/crds.tsv"
    KUBECTL wait --for=condition=Available "${svcs[@]}" --timeout=60s >/dev/null \
      || die "APIService(s) not Available: $(KUBECTL get "${svcs[@]}" -o jsonpath='{range .items[*]}{.metadata.name}: {.status.conditions[0].message}{"\n"}{end}')"
    wait_discoverable "$tmp/crds.tsv" 60
    while IFS=$'\t' read -r name g plural vers; do
      log "  $name: served by apiextensions-apiserver; APIService(s) ${vers//,/ } Available; discoverable via $URL"
    done < "$tmp/crds.tsv"
    echo "CRDs: served by apiextensions-apiserver $(server_version "$APIEXT_URL") (CEL enforced) — $n CRD(s) from $dir, $(( $(now_ms) - t0 )) ms"
    write_env_fragment 20-crds <<EOF
export E2E_CEL=1
export E2E_CRD_MODE=hybrid
EOF
  else
    # a leftover aggregated (hybrid) APIService for one of these group/versions would hijack it
    local aggregated
    aggregated=$(KUBECTL get apiservice -o jsonpath='{range .items[?(@.spec.service.name)]}{.metadata.name}{"\n"}{end}' 2>/dev/null || true)
    while IFS=$'\t' read -r name g plural vers; do
      for v in ${vers//,/ }; do
        if grep -qx "$v.$g" <<<"$aggregated"; then
          log "deleting leftover aggregated APIService $v.$g"; KUBECTL delete apiservice "$v.$g" >/dev/null
        fi
      done
    done < "$tmp/crds.tsv"
    for c in "$tmp"/crd-*.json; do
      KUBECTL apply --server-side --force-conflicts --field-manager=kluctl-gitops-e2e -f "$c" >/dev/null || die "server-side apply of $(basename "$c") failed"
    done
    local crds=()
    while IFS=$'\t' read -r name g plural vers; do crds+=("crd/$name"); done < "$tmp/crds.tsv"
    KUBECTL wait --for condition=established "${crds[@]}" --timeout=60s >/dev/null || die "CRD(s) not Established: ${crds[*]}"
    wait_discoverable "$tmp/crds.tsv" 60
    while IFS=$'\t' read -r name g plural vers; do log "  $name: Established in kube-apiserver; discoverable via $URL"; done < "$tmp/crds.tsv"
    [ "$stripped" = 0 ] || log "removed $stripped x-kubernetes-validations block(s) (kube-apiserver 1.20 rejects the field under SSA)"
    echo "CRDs: installed in kube-apiserver $(server_version "$URL") with CEL rules removed (CEL not enforced) — $n CRD(s) from $dir, $(( $(now_ms) - t0 )) ms"
    write_env_fragment 20-crds <<EOF
export E2E_CEL=0
export E2E_CRD_MODE=core
EOF
  fi
  rm -rf "$tmp"
}

case "${1:-}" in
  install) cmd_install ;;
  _install-apiext) install_apiext ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  apply-crds) shift; cmd_apply_crds "$@" ;;
  *) echo "usage: $0 install|start|stop|status|clean|apply-crds DIR [--no-cel-dir DIR]" >&2; exit 2 ;;
esac
