#!/usr/bin/env bash
# bench-sled.sh - sled backup and restore throughput (MB/s of keys and
# values) and peak RSS on a database of about BENCH_SLED_MB (default 1024)
# megabytes, and ops-compact's time on a churned database.
#
# Tuning (env vars): BENCH_DIR (default /var/tmp/ops-bench), BENCH_SLED_MB,
# BENCH_RUNS (default 3), OPS_BIN (prebuilt binaries; default: cargo build).
# The databases live in BENCH_DIR; backups and restores go to /dev/shm.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
MB=${BENCH_SLED_MB:-1024}
RUNS=${BENCH_RUNS:-3}

[[ -x /usr/bin/time ]] || { echo "bench-sled.sh: /usr/bin/time missing (apt-get install -y time)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet --workspace)
BIN=${OPS_BIN:-$ROOT/target/release}
MAKE_DB=$ROOT/target/release/make-sled-db

SHM=$(mktemp -d /dev/shm/ops-bench-sled.XXXXXX)
trap 'rm -rf "$SHM"' EXIT

db=$BENCH_DIR/sled-$MB
if [[ ! -f $db.done ]]; then
  echo "making a sled database of about $MB MB in $db..." >&2
  rm -rf "$db"
  mkdir -p "$BENCH_DIR"
  "$MAKE_DB" "$db" "$MB" >"$db.done"
fi
data_bytes=$(cut -d' ' -f1 "$db.done")

# timed LABEL CMD...: appends "LABEL seconds kib" to the results.
timed() {
  local label=$1
  shift
  /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" >"$SHM/out"
  echo "$label $(tail -n 1 "$SHM/time")" >>"$SHM/results"
}

for ((i = 0; i < RUNS; i++)); do
  rm -rf "$SHM/b" "$SHM/r"
  timed backup "$BIN/ops-backup" create "sled:$db" --to "$SHM/b" --json
  art=$(find "$SHM/b" -name '*.sled.zst' | head -n 1)
  timed restore "$BIN/ops-restore" "$art" --to "$SHM/r" --json
done
art_bytes=$(stat -c %s "$art")

churned=$SHM/churned
"$MAKE_DB" "$churned" 200 3 >/dev/null
before=$(du -sb "$churned" | cut -f1)
timed compact "$BIN/ops-compact" "sled:$churned" --json
compact_line=$(cat "$SHM/out")

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v l="$1" -v f="$2" '$1==l {print $f}' "$SHM/results"; }

echo "## ops-* sled benchmark"
echo
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- database: $data_bytes bytes of keys and values in $db ($(du -sh "$db" | cut -f1) on disk); artifact $art_bytes bytes"
echo "- backups and restores go to /dev/shm (tmpfs); medians of $RUNS runs; MB = 10^6 bytes"
echo
echo "| operation | median s | MB/s | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for op in backup restore; do
  secs=$(col "$op" 2 | median)
  kib=$(col "$op" 3 | sort -g | tail -n 1)
  awk -v op="$op" -v s="$secs" -v k="$kib" -v b="$data_bytes" \
    'BEGIN {printf "| %s | %.2f | %.0f | %.1f |\n", op, s, b / 1e6 / s, k / 1024}'
done
secs=$(col compact 2 | median)
kib=$(col compact 3 | sort -g | tail -n 1)
awk -v s="$secs" -v k="$kib" 'BEGIN {printf "| compact (churned, 200 MB live) | %.2f | | %.1f |\n", s, k / 1024}'
echo
echo "compaction: $before bytes on disk before; record: $compact_line"
