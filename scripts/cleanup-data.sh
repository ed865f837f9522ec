#!/usr/bin/env bash
# cleanup-data.sh - age out raw data: in each of RAW_DIRS remove files older
# than DELETE_AFTER (ops-prune --files), keeping the newest file; then, only
# in the directories named in COMPRESS_DIRS, compress plain files older than
# COMPRESS_AFTER to FILE.zst in place (ops-compact --files).
#
# Compression is opt-in per directory: whatever reads the files in place
# cannot read FILE.zst (a query engine and .parquet.zst). Columnar and
# compressed formats (parquet, ORC, Arrow/feather, Avro, images, archives
# such as .zip .gz .bz2 .xz .zst .7z .tgz) are never compressed, even in a
# COMPRESS_DIRS directory. Compressed files keep their modification time,
# so they age out on the same schedule.
#
# Settings (environment, with defaults):
#   RAW_DIRS        directories to age out, space-separated             (data/raw)
#   DELETE_AFTER    remove files older than this; the newest file under
#                   each RAW_DIRS directory always stays; "never" keeps
#                   every file                                           (90d)
#   COMPRESS_DIRS   directories whose old files are compressed, space-
#                   separated; empty: nothing is compressed             (empty)
#   COMPRESS_AFTER  compress files last modified longer ago than this;
#                   "never" or empty: nothing is compressed             (7d)
#   DRY_RUN         1: say what would be done, change nothing           (0)
#   RECORDS         file the run's JSON-lines records are appended to  (stdout)
#   OPS_BIN         directory holding the ops-* tools                   (found on PATH)
#
# Example: RAW_DIRS="data/raw data/warehouse" COMPRESS_DIRS=data/raw
#   DELETE_AFTER=30d removes month-old raw JSONL and parquet alike, and
#   compresses the week-old JSONL in data/raw only.
#
# Log lines (timestamped, UTC) go to stderr; records to RECORDS. Exit status:
# 0 done; 1 a step failed for some directory (the others still ran).
set -euo pipefail

RAW_DIRS=${RAW_DIRS:-data/raw}
DELETE_AFTER=${DELETE_AFTER:-90d}
COMPRESS_DIRS=${COMPRESS_DIRS:-}
COMPRESS_AFTER=${COMPRESS_AFTER-7d}
DRY_RUN=${DRY_RUN:-0}
RECORDS=${RECORDS:-}
[[ -z ${OPS_BIN:-} ]] || PATH="$OPS_BIN:$PATH"

log() { printf '%s cleanup-data.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

if [[ -n $RECORDS ]]; then exec 3>>"$RECORDS"; else exec 3>&1; fi
dry=()
[[ $DRY_RUN != 1 ]] || dry=(--dry-run)
failed=0
read -ra dirs <<<"$RAW_DIRS"
read -ra packed <<<"$COMPRESS_DIRS"
[[ -n $COMPRESS_AFTER && $COMPRESS_AFTER != never ]] || packed=()
log "start: ${#dirs[@]} directory(ies) to age out after $DELETE_AFTER," \
  "${#packed[@]} to compress after ${COMPRESS_AFTER:-never}${dry:+ (dry run)}"

if [[ $DELETE_AFTER != never ]]; then
  for dir in "${dirs[@]}"; do
    log "removing files in $dir older than $DELETE_AFTER (the newest stays)"
    if ! ops-prune --files "$dir" --older-than "$DELETE_AFTER" --keep-last 1 "${dry[@]}" >&3; then
      log "error: removing old files in $dir failed"
      failed=1
    fi
  done
fi

for dir in "${packed[@]}"; do
  log "compressing files in $dir older than $COMPRESS_AFTER"
  if ! ops-compact --files "$dir" --older-than "$COMPRESS_AFTER" "${dry[@]}" >&3; then
    log "error: compressing in $dir failed"
    failed=1
  fi
done

log "done$( ((failed)) && echo ', with errors')"
exit "$failed"
