#!/usr/bin/env bash
# down.sh — stop everything up.sh started (by pid files). State (certs, repos, etcd data) is kept,
# so the next up.sh is a fast restart.
#
#   down.sh           stop servers + cluster
#   down.sh --clean   also delete $E2E_STATE and the etcd data dir (the download/build cache is kept)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

clean=0
case "${1:-}" in
  "") ;;
  --clean) clean=1 ;;
  *) die "usage: $0 [--clean]" ;;
esac

t0=$(now_ms)
# servers and cluster shut down in parallel (SeaweedFS needs ~4 s, the API servers ~3 s + etcd)
action=stop; [ "$clean" = 0 ] || action=clean
"$SCRIPTS_DIR/servers.sh" "$action" & sp=$!
"$SCRIPTS_DIR/cluster.sh" "$action" & cp=$!
rc=0
wait "$sp" || { rc=1; log "servers.sh $action failed"; }
wait "$cp" || { rc=1; log "cluster.sh $action failed"; }
if [ "$clean" = 1 ] && [ "$rc" = 0 ]; then rm -rf "$E2E_STATE"; log "removed $E2E_STATE"; fi
log "down in $(( $(now_ms) - t0 )) ms"
exit "$rc"
