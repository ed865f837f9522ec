#!/usr/bin/env bash
# bench-encrypt.sh - encrypted backups (age) against the same backup in the
# clear, and their checks against what a user would run instead:
#   backup      ops-backup create --recipient  vs  ops-backup create (clear)
#   verify-nokey ops-verify without a key (checks the stored bytes)  vs  sha256sum
#   verify-key  ops-verify --identity (decrypt, decompress, every entry)
#               vs  age -d -i KEY F | zstd -t
# Backups are written to the disk ($BENCH_DIR), where users keep them.
# Paired runs, alternating which side goes first; medians and spread.
#   BENCH_DIR (default /var/tmp/ops-bench), BENCH_SMALL_MB (500),
#   BENCH_LARGE_MB (1000), BENCH_RUNS (5), OPS_BIN (default: release build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
SMALL_MB=${BENCH_SMALL_MB:-500}
LARGE_MB=${BENCH_LARGE_MB:-1000}
RUNS=${BENCH_RUNS:-5}
die() { echo "bench-encrypt.sh: $*" >&2; exit 1; }
for t in age zstd sha256sum python3; do
  command -v "$t" >/dev/null || die "$t is required"
done
if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release
fi
# shellcheck source=scripts/bench-corpus.sh
. "$ROOT/scripts/bench-corpus.sh"
WORK=$(mktemp -d "$BENCH_DIR/encrypt.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RES=$WORK/results # lines: corpus op side seconds

timed() {
  local c=$1 op=$2 side=$3 start end
  shift 3
  start=$(date +%s.%N)
  "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; die "$c $op $side failed: $*"; }
  end=$(date +%s.%N)
  echo "$c $op $side $(echo "$end - $start" | bc)" >>"$RES"
}
pair() { if (($1 % 2 == 0)); then "$2_ours"; "$2_theirs"; else "$2_theirs"; "$2_ours"; fi; }

backup_ours() { rm -rf "$WORK/enc"; timed "$c" backup ours "$BIN/ops-backup" create "$src" --to "$WORK/enc" --recipient "$PUB"; sync; }
backup_theirs() { rm -rf "$WORK/clear"; timed "$c" backup theirs "$BIN/ops-backup" create "$src" --to "$WORK/clear"; sync; }
# shellcheck disable=SC2016
verify-nokey_ours() { timed "$c" verify-nokey ours "$BIN/ops-verify" "$art"; }
verify-nokey_theirs() { timed "$c" verify-nokey theirs sha256sum "$art"; }
verify-key_ours() { timed "$c" verify-key ours "$BIN/ops-verify" --identity "$KEY" "$art"; }
# shellcheck disable=SC2016
verify-key_theirs() { timed "$c" verify-key theirs bash -c 'set -o pipefail; age -d -i "$1" "$2" | zstd -t -q -' _ "$KEY" "$art"; }

KEY=$WORK/key
PUB=$("$BIN/ops-backup" keygen --output "$KEY" 2>/dev/null)
corpus small "$SMALL_MB"
corpus large "$LARGE_MB"
for c in small large; do
  src=$BENCH_DIR/$c
  echo "benchmarking $c ($RUNS paired runs)..." >&2
  tar -cf - -C "$src" . | cat >/dev/null
  for ((i = 0; i < RUNS; i++)); do pair "$i" backup; done
  art=$(find "$WORK/enc" -name '*.tar.zst.age')
  for ((i = 0; i < RUNS; i++)); do pair "$i" verify-nokey; done
  for ((i = 0; i < RUNS; i++)); do pair "$i" verify-key; done
done

col() { awk -v c="$1" -v o="$2" -v s="$3" '$1==c && $2==o && $3==s {print $4}' "$RES" | sort -g; }
median() { awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
spread() { awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }
echo
echo "- corpora: small $SMALL_MB MB, large $LARGE_MB MB ($BENCH_DIR, $(df --output=fstype "$BENCH_DIR" | tail -n 1)); $RUNS paired runs"
echo "| corpus | operation | ours median s (spread) | theirs median s (spread) | ratio |"
echo "|---|---|---|---|---|"
for c in small large; do
  for op in backup verify-nokey verify-key; do
    o=$(col $c $op ours | median); t=$(col $c $op theirs | median)
    echo "| $c | $op | $o ($(col $c $op ours | spread)) | $t ($(col $c $op theirs | spread)) | $(echo "scale=3; $o / $t" | bc) |"
  done
done
echo "(backup: theirs = the same backup unencrypted; verify-nokey: theirs = sha256sum; verify-key: theirs = age -d | zstd -t)"
