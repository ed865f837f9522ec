#!/usr/bin/env bash
# bench-progress.sh - what the progress line costs: ops-backup create of the
# small-files corpus with stderr on a pseudo-terminal (progress drawn, via
# script(1)) against stderr to /dev/null (no progress), paired runs
# alternating which goes first, both writing to the disk (BENCH_DIR), as
# users keep their backups. Prints the median and range of each and the
# ratio.
#
# Tuning (env vars):
#   BENCH_DIR       where the corpus and the backups go (default /var/tmp/ops-bench)
#   BENCH_SMALL_MB  size of the corpus                   (default 200)
#   BENCH_RUNS      timed pairs, after one warm-up pair  (default 5)
#   OPS_BIN         dir holding prebuilt ops-* binaries  (default: cargo build --release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
SMALL_MB=${BENCH_SMALL_MB:-200}
RUNS=${BENCH_RUNS:-5}

command -v script >/dev/null || { echo "bench-progress.sh: script(1) is required (util-linux)" >&2; exit 1; }
if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release
fi

# shellcheck source=scripts/bench-corpus.sh
. "$ROOT/scripts/bench-corpus.sh"
corpus progress "$SMALL_MB" small
SRC=$BENCH_DIR/progress
OUT=$BENCH_DIR/progress-backups
trap 'rm -rf "$OUT"' EXIT

seconds() {
  local start end
  rm -rf "$OUT"
  sync
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
quiet() { seconds "$BIN/ops-backup" create "$SRC" --to "$OUT"; }
shown() { seconds script -qefc "$(printf '%q ' "$BIN/ops-backup" create "$SRC" --to "$OUT")" /dev/null; }

quiet >/dev/null
shown >/dev/null
plain=() tty=()
for ((i = 0; i < RUNS; i++)); do
  if ((i % 2)); then tty+=("$(shown)"); plain+=("$(quiet)"); else plain+=("$(quiet)"); tty+=("$(shown)"); fi
done
python3 - "${plain[*]}" "${tty[*]}" <<'PY'
import statistics, sys
plain, tty = ([int(x) / 1000 for x in arg.split()] for arg in sys.argv[1:3])
p, t = statistics.median(plain), statistics.median(tty)
print("| ops-backup create, small corpus, on disk | median | range |")
print("|---|---|---|")
print(f"| stderr to /dev/null (no progress) | {p:.2f} s | {min(plain):.2f}-{max(plain):.2f} s |")
print(f"| stderr on a terminal (progress) | {t:.2f} s | {min(tty):.2f}-{max(tty):.2f} s |")
print(f"| ratio terminal / quiet | {t / p:.2f} | |")
PY
