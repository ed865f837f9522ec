#!/usr/bin/env bash
# bench-compact.sh - ops-compact --files ("ours") against the shell habit it
# replaces ("theirs"): find DIR -type f -exec zstd -q --rm {} +
#
# Both compress every file of the many-small-files corpus (bench-corpus.sh,
# the one bench.sh uses) to FILE.zst in place at zstd level 3 and remove the
# original. Ours also fsyncs each file, decompresses and compares it before
# the original goes, and keeps mode, owner and times (zstd keeps mode and
# times). Both work on a fresh copy in /dev/shm per run, because they modify
# it in place; the copy is made outside the timing. Runs are paired and
# alternating (ours, ours --jobs 1, theirs, ...); the table gives medians of
# wall time and peak RSS (/usr/bin/time -f '%e %M') and the ratio ours/theirs.
#
# Tuning (env vars):
#   BENCH_DIR       where the corpus lives          (default /var/tmp/ops-bench)
#   BENCH_SMALL_MB  size of the small-files corpus  (default 500, ~100 files/MB)
#   BENCH_RUNS      timed runs per side             (default 3)
#   OPS_BIN         dir holding a prebuilt ops-compact (default: cargo build --release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMALL_MB=${BENCH_SMALL_MB:-500}
RUNS=${BENCH_RUNS:-3}
export BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}

die() { echo "bench-compact.sh: $*" >&2; exit 1; }

[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (apt-get install -y time)"
for t in zstd python3 find; do
  command -v "$t" >/dev/null || die "$t is required"
done
# shellcheck source=scripts/bench-corpus.sh
source "$ROOT/scripts/bench-corpus.sh"

if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet -p ops-compact)
  BIN=$ROOT/target/release
fi
[[ -x $BIN/ops-compact ]] || die "$BIN/ops-compact not found or not executable"

SHM=$(mktemp -d /dev/shm/ops-bench-compact.XXXXXX)
trap 'rm -rf "$SHM"' EXIT
RES=$SHM/results # lines: side seconds kib

corpus small "$SMALL_MB"
SRC=$BENCH_DIR/small

# timed SIDE CMD...: a fresh copy of the corpus at $SHM/work, then CMD on it
# under /usr/bin/time; checks that every file became FILE.zst.
timed() {
  local side=$1
  shift
  rm -rf "$SHM/work"
  cp -a "$SRC" "$SHM/work"
  sync
  if ! /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" >"$SHM/out" 2>&1; then
    tail -n 20 "$SHM/out" "$SHM/time" >&2
    die "$side failed: $*"
  fi
  local plain
  plain=$(find "$SHM/work" -type f ! -name '*.zst' | wc -l)
  [[ $plain == 0 ]] || die "$side left $plain files uncompressed"
  echo "$side $(tail -n 1 "$SHM/time")" >>"$RES"
}

: >"$RES"
echo "benchmarking ops-compact --files on $SRC ($RUNS runs per side)..." >&2
for ((i = 0; i < RUNS; i++)); do
  timed ours "$BIN/ops-compact" --files "$SHM/work" --older-than 0s --json
  timed "ours-jobs-1" "$BIN/ops-compact" --files "$SHM/work" --older-than 0s --jobs 1 --json
  timed theirs find "$SHM/work" -type f -exec zstd -q --rm {} +
done
rm -rf "$SHM/work"

col() { awk -v s="$1" -v f="$2" '$1==s {print $f}' "$RES" | sort -g; }
median() { awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
files=$(find "$SRC" -type f | wc -l)
theirs=$(col theirs 2 | median)
echo
echo "## ops-compact --files benchmark"
echo
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown CPU)"
echo "- corpus: $files files, $bytes bytes ($SRC), a fresh copy on /dev/shm (tmpfs) per run"
echo "- theirs: find DIR -type f -exec zstd -q --rm {} + (zstd $(zstd -V | grep -o 'v[0-9.]*'), level 3)"
echo "- ours: ops-compact --files DIR --older-than 0s (level 3; fsync, read-back check, mode/owner/times); default --jobs is $(nproc)"
echo "- medians of $RUNS paired, alternating runs"
echo
echo "| side | median s | ratio to theirs | peak RSS MiB | MB/s |"
echo "|---|---:|---:|---:|---:|"
for side in ours ours-jobs-1 theirs; do
  s=$(col "$side" 2 | median)
  awk -v side="$side" -v s="$s" -v t="$theirs" -v b="$bytes" -v rss="$(col "$side" 3 | tail -n 1)" \
    'BEGIN { printf "| %s | %.2f | %.2f | %.1f | %.0f |\n", side, s, (t > 0 ? s / t : 0), rss / 1024, (s > 0 ? b / 1e6 / s : 0) }'
done
