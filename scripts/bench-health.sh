#!/usr/bin/env bash
# bench-health.sh - ops-health's local checks together (--disk, --path,
# --backups over a directory of BENCH_HEALTH_COUNT artifacts, default 1000)
# against the shell habit they replace (df -h, df -i, test -w, and the
# newest manifest by ls -t). Median wall time and peak RSS of BENCH_RUNS
# (default 9) paired runs. The PostgreSQL check is timed in bench-pg.sh.
#
# Tuning (env vars): BENCH_DIR (default /var/tmp/ops-bench; the backup
# directory lives there, on disk), BENCH_HEALTH_COUNT, BENCH_RUNS, OPS_BIN.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
COUNT=${BENCH_HEALTH_COUNT:-1000}
RUNS=${BENCH_RUNS:-9}

[[ -x /usr/bin/time ]] || { echo "bench-health.sh: /usr/bin/time missing (apt-get install -y time)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet --workspace)
BIN=${OPS_BIN:-$ROOT/target/release}

backups=$BENCH_DIR/health-backups-$COUNT
if [[ ! -f $backups.done ]]; then
  echo "making $COUNT verified backups in $backups..." >&2
  rm -rf "$backups"
  mkdir -p "$BENCH_DIR"
  "$ROOT/target/release/make-backups" "$backups" "$COUNT" 4 >/dev/null
  "$BIN/ops-verify" "$backups" >/dev/null
  touch "$backups.done"
fi
SHM=$(mktemp -d /dev/shm/ops-bench-health.XXXXXX)
trap 'rm -rf "$SHM"' EXIT

timed() {
  local label=$1
  shift
  /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" >"$SHM/out-$label" 2>&1 || true
  echo "$label $(tail -n 1 "$SHM/time")" >>"$SHM/results"
}

for ((i = 0; i < RUNS; i++)); do
  timed ours "$BIN/ops-health" --disk / --disk "$BENCH_DIR" --path "$BENCH_DIR/" --backups "$backups" --max-age 100000d --json
  timed theirs sh -c 'df -h / "$1" && df -i / "$1" && test -w "$1" && ls -t "$2"/*.manifest.jsonl | head -n 4' sh "$BENCH_DIR" "$backups"
done
grep -q '"check":"backups"' "$SHM/out-ours" || { cat "$SHM/out-ours" >&2; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v l="$1" -v f="$2" '$1==l {print $f}' "$SHM/results"; }
mib() { awk '{printf "%.1f", $1 / 1024}'; }

echo "## ops-health local checks benchmark"
echo
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- checks: --disk / --disk $BENCH_DIR --path $BENCH_DIR/ --backups (4 series, $COUNT verified backups on disk, warm cache); median of $RUNS paired runs (/usr/bin/time, 10 ms resolution)"
echo "- theirs: df -h, df -i, test -w, ls -t of the manifests (reads no manifest, checks no verification)"
echo
echo "| side | wall s | peak RSS MiB | records |"
echo "|---|---:|---:|---:|"
echo "| ops-health | $(col ours 2 | median) | $(col ours 3 | median | mib) | $(wc -l <"$SHM/out-ours") |"
echo "| shell | $(col theirs 2 | median) | $(col theirs 3 | median | mib) | - |"
