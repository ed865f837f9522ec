#!/usr/bin/env bash
# cleanup-data.sh - age out raw data: compress plain files older than
# COMPRESS_AFTER to FILE.zst in place (ops-compact --files), then remove
# files older than DELETE_AFTER (ops-prune --files). Compressed files keep
# their modification time, so they age out on the same schedule.
#
# Settings (environment, with defaults):
#   RAW_DIRS        directories of raw data, space-separated            (data/raw)
#   COMPRESS_AFTER  compress files last modified longer ago than this   (7d)
#   DELETE_AFTER    remove files older than this (the newest file of each
#                   directory always stays); "never" keeps them          (90d)
#   DRY_RUN         1: say what would be done, change nothing           (0)
#   RECORDS         file the run's JSON-lines records are appended to  (stdout)
#   OPS_BIN         directory holding the ops-* tools                   (found on PATH)
#
# Log lines (timestamped, UTC) go to stderr; records to RECORDS. Exit status:
# 0 done; 1 a step failed for some directory (the others still ran).
set -euo pipefail

RAW_DIRS=${RAW_DIRS:-data/raw}
COMPRESS_AFTER=${COMPRESS_AFTER:-7d}
DELETE_AFTER=${DELETE_AFTER:-90d}
DRY_RUN=${DRY_RUN:-0}
RECORDS=${RECORDS:-}
[[ -z ${OPS_BIN:-} ]] || PATH="$OPS_BIN:$PATH"

log() { printf '%s cleanup-data.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

if [[ -n $RECORDS ]]; then exec 3>>"$RECORDS"; else exec 3>&1; fi
dry=()
[[ $DRY_RUN != 1 ]] || dry=(--dry-run)
failed=0
read -ra dirs <<<"$RAW_DIRS"
log "start: ${#dirs[@]} directory(ies); compress after $COMPRESS_AFTER, remove after $DELETE_AFTER${dry:+ (dry run)}"

for dir in "${dirs[@]}"; do
  log "compressing files in $dir older than $COMPRESS_AFTER"
  if ! ops-compact --files "$dir" --older-than "$COMPRESS_AFTER" "${dry[@]}" >&3; then
    log "error: compressing in $dir failed"
    failed=1
    continue
  fi
  [[ $DELETE_AFTER != never ]] || continue
  log "removing files in $dir older than $DELETE_AFTER"
  if ! ops-prune --files "$dir" --older-than "$DELETE_AFTER" "${dry[@]}" >&3; then
    log "error: removing old files in $dir failed"
    failed=1
  fi
done

log "done$( ((failed)) && echo ', with errors')"
exit "$failed"
