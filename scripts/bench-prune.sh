#!/usr/bin/env bash
# bench-prune.sh - ops-prune deciding a policy over BENCH_PRUNE_COUNT
# (default 100000) backup records on stdin: wall time and peak RSS, beside
# `ls -t | tail -n +8`, the habit it replaces (which decides only
# --keep-last and reads nothing).
#
# Tuning (env vars): BENCH_PRUNE_COUNT, BENCH_RUNS (default 5), OPS_BIN
# (prebuilt binaries; default: cargo build). The backup directory (four
# series of hourly backups, made as ops-backup makes them) lives in /dev/shm.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT=${BENCH_PRUNE_COUNT:-100000}
RUNS=${BENCH_RUNS:-5}

[[ -x /usr/bin/time ]] || { echo "bench-prune.sh: /usr/bin/time missing (apt-get install -y time)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet --workspace)
BIN=${OPS_BIN:-$ROOT/target/release}

SHM=$(mktemp -d /dev/shm/ops-bench-prune.XXXXXX)
trap 'rm -rf "$SHM"' EXIT
backups=$SHM/backups

echo "making $COUNT backups in $backups..." >&2
"$ROOT/target/release/make-backups" "$backups" "$COUNT" 4 >/dev/null
/usr/bin/time -f '%e %M' -o "$SHM/list-time" "$BIN/ops-backup" list "$backups" --json >"$SHM/records.jsonl"
records=$(wc -l <"$SHM/records.jsonl")

# timed LABEL CMD...: appends "LABEL seconds kib" to the results; stdin from the records.
timed() {
  local label=$1
  shift
  /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" <"$SHM/records.jsonl" >"$SHM/out-$label" 2>"$SHM/err"
  echo "$label $(tail -n 1 "$SHM/time")" >>"$SHM/results"
}

prune=("$BIN/ops-prune" --dry-run --json)
for ((i = 0; i < RUNS; i++)); do
  timed gfs "${prune[@]}" --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 3
  timed last "${prune[@]}" --keep-last 7
  timed ls sh -c 'for s in 0 1 2 3; do ls -t "$1"/series${s}_*.manifest.jsonl | tail -n +8; done' sh "$backups"
done
decided=$(grep -c '"prune"' "$SHM/out-gfs" || true)
removed=$(grep -c '"action":"remove"' "$SHM/out-gfs" || true)
/usr/bin/time -f '%e %M' -o "$SHM/real-time" "$BIN/ops-prune" --json --keep-last 7 "$backups" >/dev/null 2>"$SHM/err"
summary=$(tail -n 1 "$SHM/err")

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v l="$1" -v f="$2" '$1==l {print $f}' "$SHM/results"; }
mib() { awk '{printf "%.0f", $1 / 1024}'; }

echo "## ops-prune benchmark"
echo
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- input: $records backup records on stdin (ops-backup list of 4 series of hourly backups, in /dev/shm); median of $RUNS paired runs"
echo
echo "| run | wall s | peak RSS MiB |"
echo "|---|---|---|"
for label in gfs last ls; do
  case $label in
    gfs) name="ops-prune --dry-run --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 3" ;;
    last) name="ops-prune --dry-run --keep-last 7" ;;
    ls) name="ls -t series*_ \\| tail -n +8 (4 series; keep-last only, reads no record)" ;;
  esac
  echo "| $name | $(col "$label" 2 | median) | $(col "$label" 3 | median | mib) |"
done
read -r list_s list_kib <"$SHM/list-time"
read -r real_s real_kib <"$SHM/real-time"
echo
echo "- records annotated by each GFS run: $decided ($removed to remove)"
echo "- producing the records (ops-backup list of $records backups): ${list_s}s, $(echo "$list_kib" | mib) MiB"
echo "- then a real ops-prune --keep-last 7 of the directory: ${real_s}s, $(echo "$real_kib" | mib) MiB ($summary)"
