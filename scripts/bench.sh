#!/usr/bin/env bash
# bench.sh - compare ops-backup / ops-verify / ops-restore ("ours") against the
# plain tools ("theirs"): tar | zstd -3 -T0, sha256sum && zstd -t, tar --zstd -x.
#
# For two corpora (many small files; a few large files) it runs paired
# runs, alternating which side goes first, and reports the median wall time
# and peak RSS (/usr/bin/time -f '%e %M') of each side as a Markdown table.
# Backup outputs and restores go to a private dir under /dev/shm (tmpfs), so
# the disk does not dominate; the corpora are generated once and then reused.
#
# Tuning (env vars):
#   BENCH_DIR       where the corpora live          (default /var/tmp/ops-bench)
#   BENCH_SMALL_MB  size of the small-files corpus  (default 500, ~100 files/MB)
#   BENCH_LARGE_MB  size of the large-files corpus  (default 1000)
#   BENCH_RUNS      timed runs per side and step    (default 3)
#   OPS_BIN         dir holding prebuilt ops-* binaries (default: cargo build --release)
# MB = 10^6 bytes; RSS is reported in MiB.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
SMALL_MB=${BENCH_SMALL_MB:-500}
LARGE_MB=${BENCH_LARGE_MB:-1000}
RUNS=${BENCH_RUNS:-3}

die() { echo "bench.sh: $*" >&2; exit 1; }

[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (apt-get install -y time)"
for t in tar zstd sha256sum python3; do
  command -v "$t" >/dev/null || die "$t is required"
done

if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release
fi
for t in ops-backup ops-verify ops-restore; do
  [[ -x $BIN/$t ]] || die "$BIN/$t not found or not executable"
done

SHM=$(mktemp -d /dev/shm/ops-bench.XXXXXX)
trap 'rm -rf "$SHM"' EXIT
RES=$SHM/results # lines: corpus op side seconds kib

# gen and corpus NAME MB: the generated corpora, shared with bench-snapshot.sh.
# shellcheck source=scripts/bench-corpus.sh
. "$ROOT/scripts/bench-corpus.sh"

# timed CORPUS OP SIDE CMD...: run CMD under /usr/bin/time, append the result.
timed() {
  local c=$1 op=$2 side=$3
  shift 3
  if ! /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" >"$SHM/out" 2>&1; then
    cat "$SHM/out" "$SHM/time" >&2
    die "$c $op $side failed: $*"
  fi
  echo "$c $op $side $(tail -n 1 "$SHM/time")" >>"$RES"
}

# pair RUN OP: one timed run of each side of OP, ours first on even runs and
# theirs first on odd ones. On the development machine whichever side went
# first, just after the previous run's outputs were freed, ran slower (small
# backup: 1.05x with ours always first, 0.95x with theirs always first).
pair() {
  if (($1 % 2 == 0)); then "$2_ours"; "$2_theirs"; else "$2_theirs"; "$2_ours"; fi
}

# shellcheck disable=SC2016 # "$1"/"$2" are meant to expand in the inner bash -c
backup_ours() {
  rm -rf "$SHM/bo"
  timed "$c" backup ours "$BIN/ops-backup" create "$src" --to "$SHM/bo" --level 3 --json
  cp "$SHM/out" "$SHM/backup.json"
}
# shellcheck disable=SC2016
backup_theirs() {
  rm -f "$SHM/bt.tar.zst"
  timed "$c" backup theirs bash -c 'set -o pipefail; tar -cf - -C "$1" . | zstd -3 -T0 -q -o "$2"' _ "$src" "$SHM/bt.tar.zst"
}
verify_ours() { timed "$c" verify ours "$BIN/ops-verify" "$art" --json; }
# shellcheck disable=SC2016
verify_theirs() { timed "$c" verify theirs bash -c 'sha256sum "$1" >/dev/null && zstd -t -q "$1"' _ "$art"; }
restore_ours() {
  rm -rf "$SHM/r"
  timed "$c" restore ours "$BIN/ops-restore" "$art" --to "$SHM/r" --json
  rm -rf "$SHM/r"
}
restore_theirs() {
  rm -rf "$SHM/r" && mkdir "$SHM/r"
  timed "$c" restore theirs tar --zstd -xf "$art" -C "$SHM/r"
  rm -rf "$SHM/r"
}

bench() {
  local c=$1 src=$BENCH_DIR/$1 i art
  echo "benchmarking $c ($RUNS runs per side)..." >&2
  tar -cf - -C "$src" . | cat >/dev/null # warm the page cache (tar skips reads if output is /dev/null)
  for ((i = 0; i < RUNS; i++)); do pair "$i" backup; done
  rm -f "$SHM/bt.tar.zst"
  art=$(grep -o '"path":"[^"]*"' "$SHM/backup.json" | head -n 1 | cut -d'"' -f4)
  [[ -f $art ]] || die "ops-backup reported no usable artifact path: $(cat "$SHM/backup.json")"
  for ((i = 0; i < RUNS; i++)); do pair "$i" verify; done
  for ((i = 0; i < RUNS; i++)); do pair "$i" restore; done
  rm -rf "$SHM/bo"
}

# col CORPUS OP SIDE FIELD(4=secs,5=kib): print the values, one per line, sorted.
col() { awk -v c="$1" -v o="$2" -v s="$3" -v f="$4" '$1==c && $2==o && $3==s {print $f}' "$RES" | sort -g; }
median() { awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
max_mib() { tail -n 1 | awk '{printf "%.1f", $1/1024}'; }

corpus small "$SMALL_MB"
corpus large "$LARGE_MB"
: >"$RES"
bench small
bench large

echo
echo "## ops-* benchmark"
echo
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown CPU)"
declare -A BYTES
for c in small large; do
  BYTES[$c]=$(find "$BENCH_DIR/$c" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  echo "- corpus $c: ${BYTES[$c]} bytes, $(find "$BENCH_DIR/$c" -type f | wc -l) files ($BENCH_DIR/$c)"
done
echo "- backup outputs, the artifact verified and restores all live on /dev/shm (tmpfs); medians of $RUNS paired runs (ours first on even runs, theirs first on odd ones) with a warm page cache"
echo "- theirs: backup = tar -cf - | zstd -3 -T0; verify = sha256sum && zstd -t; restore = tar --zstd -xf"
echo "- peak RSS of a pipeline (bash -c) is the largest single process in it, not the sum"
echo
echo "| corpus | operation | ours median s | theirs median s | ratio ours/theirs | ours peak RSS MiB | theirs peak RSS MiB | ours MB/s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for c in small large; do
  for op in backup verify restore; do
    o=$(col "$c" "$op" ours 4 | median)
    t=$(col "$c" "$op" theirs 4 | median)
    awk -v c="$c" -v op="$op" -v o="$o" -v t="$t" -v b="${BYTES[$c]}" \
      -v ro="$(col "$c" "$op" ours 5 | max_mib)" -v rt="$(col "$c" "$op" theirs 5 | max_mib)" \
      'BEGIN {
        ratio = (t > 0) ? sprintf("%.2f", o / t) : "n/a"
        tput = (o > 0) ? sprintf("%.0f", b / 1e6 / o) : "n/a"
        printf "| %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n", c, op, o, t, ratio, ro, rt, tput
      }'
  done
done
