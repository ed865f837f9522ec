#!/usr/bin/env bash
# backup.sh - the nightly backup: dump the database and archive the data
# directories into BACKUP_DIR, verify every new backup, keep the newest KEEP
# of each series, and report health (as a Prometheus textfile if PROM_FILE
# is set). Cron and systemd-timer examples are in scripts/examples/.
#
# Settings (environment, with defaults):
#   DATABASE_URL  database to dump; postgres: uses libpq's PG* variables   (none)
#   DATA_DIRS     directories or sled databases to back up, space-separated (none);
#                 each is its own series, named by its base name or as NAME=PATH
#                 (two entries of one base name, svcA/data svcB/data, must be named)
#   BACKUP_DIR    where backups go                                   (/var/backups/ops)
#   KEEP          backups kept per series                            (7)
#   OFFSITE       a second place each new verified backup is copied to, e.g.
#                 s3://bucket/web01 (with the AWS_* variables) or a mounted disk;
#                 pruned with the same KEEP and checked by health     (none)
#   RECIPIENTS_FILE  encrypt every backup to the age public keys in this file
#                 (ops-backup keygen prints one); this host then cannot read
#                 them, and verifies them as stored                  (none)
#   MAX_AGE       health: the newest backup of a series may be this old (26h)
#   DISK_WARN     health: warn when BACKUP_DIR's filesystem is this full (80%)
#   DISK_CRIT     health: critical when it is this full               (90%)
#   PROM_FILE     node_exporter textfile to write health to          (none)
#   RECORDS       file the run's JSON-lines records are appended to  (stdout)
#   OPS_BIN       directory holding the ops-* tools                  (found on PATH)
#
# Log lines (timestamped, UTC) go to stderr; records to RECORDS. Exit status:
# 0 all done; 1 a backup, verification, prune or health check failed (the
# others still ran); 2 nothing to back up.
set -euo pipefail

DATABASE_URL=${DATABASE_URL:-}
DATA_DIRS=${DATA_DIRS:-}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/ops}
KEEP=${KEEP:-7}
MAX_AGE=${MAX_AGE:-26h}
DISK_WARN=${DISK_WARN:-80%}
DISK_CRIT=${DISK_CRIT:-90%}
PROM_FILE=${PROM_FILE:-}
OFFSITE=${OFFSITE:-}
RECIPIENTS_FILE=${RECIPIENTS_FILE:-}
RECORDS=${RECORDS:-}
[[ -z ${OPS_BIN:-} ]] || PATH="$OPS_BIN:$PATH"

log() { printf '%s backup.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
# Passwords in connection strings never reach the log.
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#; s#(password=)[^ &]*#\1***#g' <<<"$1"; }

if [[ -n $RECORDS ]]; then exec 3>>"$RECORDS"; else exec 3>&1; fi

# Every source gets a series of its own: --name per DATA_DIRS entry, and two
# entries that would share one are refused before anything is written.
sources=()
names=()
[[ -z $DATABASE_URL ]] || { sources+=("$DATABASE_URL"); names+=(""); }
read -ra dirs <<<"$DATA_DIRS"
declare -A named_by=()
for entry in "${dirs[@]}"; do
  if [[ $entry =~ ^([A-Za-z0-9_-][A-Za-z0-9._-]*)=(.+)$ ]]; then
    name=${BASH_REMATCH[1]} path=${BASH_REMATCH[2]}
  else
    path=$entry
    # The name ops-backup would give it: that of the real directory.
    name=$(basename -- "$(realpath -m -- "${entry#sled:}")")
    name=${name//[^A-Za-z0-9._-]/-}
    name=${name##.}
    name=${name:-backup}
  fi
  if [[ -n ${named_by[$name]:-} ]]; then
    log "error: DATA_DIRS: ${named_by[$name]} and $path would both be series $name;" \
      "name them, e.g. DATA_DIRS='a-$name=${named_by[$name]} b-$name=$path'"
    exit 2
  fi
  named_by[$name]=$path
  sources+=("$path")
  names+=("$name")
done
if ((${#sources[@]} == 0)); then
  log "error: nothing to back up; set DATABASE_URL and/or DATA_DIRS"
  exit 2
fi

mkdir -p "$BACKUP_DIR"
made=$(mktemp "${TMPDIR:-/tmp}/backup.sh.XXXXXX")
trap 'rm -f "$made" "$made.offsite"' EXIT
failed=0
log "start: ${#sources[@]} source(s) into $BACKUP_DIR, keeping $KEEP per series"

for i in "${!sources[@]}"; do
  source=${sources[$i]}
  shown=$(redact "$source")
  log "backing up $shown"
  series=()
  [[ -z ${names[$i]} ]] || series=("--name=${names[$i]}")
  [[ -z $RECIPIENTS_FILE ]] || series+=("--recipients-file=$RECIPIENTS_FILE")
  if ops-backup create "$source" --to "$BACKUP_DIR" "${series[@]}" --json |
    ops-verify --json >>"$made"; then
    log "backed up and verified $shown"
  else
    log "error: the backup of $shown failed or did not verify"
    failed=1
  fi
done

# Pruning reads the new records first: a series whose new backup failed
# verification is left alone.
log "pruning: the newest $KEEP backups of every series stay"
if ops-prune --keep-last "$KEEP" "$BACKUP_DIR" --json <"$made" >&3; then
  log "pruned"
else
  log "error: pruning failed or was stopped (see above)"
  failed=1
fi

if [[ -n $OFFSITE ]]; then
  log "copying the new verified backups to $OFFSITE"
  if ops-backup copy --to "$OFFSITE" --json <"$made" >"$made.offsite" &&
    ops-prune --keep-last "$KEEP" "$OFFSITE" --json <"$made.offsite" >&3; then
    log "copied to $OFFSITE and pruned there"
  else
    log "error: copying to or pruning $OFFSITE failed (see above)"
    failed=1
  fi
  rm -f "$made.offsite"
fi

health=(--backups "$BACKUP_DIR" --max-age "$MAX_AGE"
  --disk "$BACKUP_DIR" --disk-warn "$DISK_WARN" --disk-crit "$DISK_CRIT")
[[ -z $DATABASE_URL ]] || health+=(--postgres "$DATABASE_URL")
[[ -z $OFFSITE ]] || health+=(--backups "$OFFSITE")
status=0
if [[ -n $PROM_FILE ]]; then
  ops-health "${health[@]}" --format prometheus --prometheus-file "$PROM_FILE" || status=$?
else
  ops-health "${health[@]}" --json >&3 || status=$?
fi
case $status in
  0) log "health: ok" ;;
  1) log "health: warning (see the check records)" ;;
  *) log "error: health: critical or unknown (exit $status)"; failed=1 ;;
esac

log "done$( ((failed)) && echo ', with errors')"
exit "$failed"
