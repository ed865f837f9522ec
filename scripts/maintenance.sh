#!/usr/bin/env bash
# maintenance.sh - the weekly maintenance: repair leftovers of crashed runs
# (ops-health --fix), compact the database (VACUUM where dead tuples warrant
# it; VACUUM FULL and REINDEX only when asked) and sled databases, collect
# garbage in a snapshot repository, and prove the newest database backup
# restores. Every step runs even when one before it failed.
#
# Settings (environment, with defaults):
#   DATABASE_URL      database to compact; postgres: uses libpq's PG* variables (none)
#   BACKUP_DIR        backup directory to check and restore-test from (/var/backups/ops)
#   SLED_DBS          sled databases to compact, space-separated       (none)
#   COMPACT_FULL      1: also VACUUM FULL tables with MIN_BLOAT bloat (exclusive lock!) (0)
#   REINDEX           1: also REINDEX CONCURRENTLY bloated indexes       (0)
#   MIN_DEAD          VACUUM tables with this share of dead tuples       (10%)
#   MIN_BLOAT         bloat that COMPACT_FULL and REINDEX act on          (20%)
#   LOCK_TIMEOUT      skip a table whose lock is not granted this fast    (5s)
#   SNAPSHOT_REPO     snapshot repository to gc (ops-snapshot gc --repo)  (none: skipped)
#   RESTORE_TEST      1: restore-test the newest backup                   (1)
#   RESTORE_TEST_URL  server for the scratch database of a PostgreSQL backup
#                     (DATABASE_URL's server, which has its credentials; else the backup's source)
#   RECORDS           file the run's JSON-lines records are appended to  (stdout)
#   OPS_BIN           directory holding the ops-* tools                   (found on PATH)
#
# Log lines (timestamped, UTC) go to stderr; records to RECORDS. Exit status:
# 0 all steps done; 1 a step failed or skipped a locked table.
set -euo pipefail

DATABASE_URL=${DATABASE_URL:-}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/ops}
SLED_DBS=${SLED_DBS:-}
COMPACT_FULL=${COMPACT_FULL:-0}
REINDEX=${REINDEX:-0}
MIN_DEAD=${MIN_DEAD:-10%}
MIN_BLOAT=${MIN_BLOAT:-20%}
LOCK_TIMEOUT=${LOCK_TIMEOUT:-5s}
SNAPSHOT_REPO=${SNAPSHOT_REPO:-}
RESTORE_TEST=${RESTORE_TEST:-1}
RESTORE_TEST_URL=${RESTORE_TEST_URL:-}
RECORDS=${RECORDS:-}
[[ -z ${OPS_BIN:-} ]] || PATH="$OPS_BIN:$PATH"

log() { printf '%s maintenance.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#; s#(password=)[^ &]*#\1***#g' <<<"$1"; }

if [[ -n $RECORDS ]]; then exec 3>>"$RECORDS"; else exec 3>&1; fi
failed=0
# step NAME CMD...: run one step with its records into the stream.
step() {
  local name=$1 status=0
  shift
  log "$name"
  "$@" >&3 || status=$?
  if ((status)); then
    log "error: $name failed (exit $status)"
    failed=1
  fi
  return 0
}

log "start"

health=(--backups "$BACKUP_DIR" --fix)
[[ -z $DATABASE_URL ]] || health+=(--postgres "$DATABASE_URL")
status=0
log "health, repairing leftovers of crashed runs"
ops-health "${health[@]}" >&3 || status=$?
case $status in
  0) log "health: ok" ;;
  1) log "health: warning (see the check records)" ;;
  *) log "error: health: critical or unknown (exit $status)"; failed=1 ;;
esac

if [[ -n $DATABASE_URL ]]; then
  compact=("$DATABASE_URL" --min-dead "$MIN_DEAD" --lock-timeout "$LOCK_TIMEOUT")
  if [[ $COMPACT_FULL == 1 ]]; then compact+=(--full --yes --min-bloat "$MIN_BLOAT"); fi
  if [[ $REINDEX == 1 ]]; then compact+=(--reindex --min-bloat "$MIN_BLOAT"); fi
  step "compacting $(redact "$DATABASE_URL")" ops-compact "${compact[@]}"
fi

read -ra sled_dbs <<<"$SLED_DBS"
for db in "${sled_dbs[@]}"; do
  step "compacting sled database $db" ops-compact "sled:$db"
done

if [[ -n $SNAPSHOT_REPO ]]; then
  if command -v ops-snapshot >/dev/null; then
    step "collecting garbage in $SNAPSHOT_REPO" ops-snapshot gc --repo "$SNAPSHOT_REPO"
  else
    log "error: SNAPSHOT_REPO is set but ops-snapshot is not installed"
    failed=1
  fi
fi

if [[ $RESTORE_TEST == 1 ]]; then
  newest=""
  if listing=$(ops-backup list "$BACKUP_DIR" --json); then
    # The newest database backup if there is one, else the newest backup.
    newest=$(grep -E '"source":\{"kind":"(postgres|sled)"' <<<"$listing" | tail -n 1 || true)
    [[ -n $newest ]] || newest=$(tail -n 1 <<<"$listing")
  else
    log "error: cannot list the backups in $BACKUP_DIR"
    failed=1
  fi
  if [[ -n $newest ]]; then
    verify=(--restore-test)
    server=$RESTORE_TEST_URL
    # Records carry locations without passwords; DATABASE_URL may have one.
    if [[ -z $server && $newest == *'"source":{"kind":"postgres"'* ]]; then server=$DATABASE_URL; fi
    [[ -z $server ]] || verify=("--restore-test=$server")
    step "restore-testing the newest backup" ops-verify "${verify[@]}" <<<"$newest"
  elif ((!failed)); then
    log "error: no backup in $BACKUP_DIR to restore-test"
    failed=1
  fi
fi

log "done$( ((failed)) && echo ', with errors')"
exit "$failed"
