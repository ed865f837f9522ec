#!/usr/bin/env bash
# bench-snapshot-encrypt.sh - an encrypted ops-snapshot repository
# (create --encrypt, passphrase from OPS_PASSWORD_FILE) against restic, which
# always encrypts, and against the same repository in the clear:
#   first    first snapshot into a fresh repository
#   same     re-snapshot with nothing changed
#   restore  restore of the first snapshot, into /dev/shm
# Repositories and caches are on the disk ($BENCH_DIR), where users keep
# them; restores go to tmpfs because this disk writes many small files
# slowly. Paired runs, the order rotating each run; medians and spread.
#   BENCH_DIR (default /var/tmp/ops-bench), BENCH_SMALL_MB (500),
#   BENCH_LARGE_MB (1000), BENCH_RUNS (5), OPS_BIN (default: release build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
SMALL_MB=${BENCH_SMALL_MB:-500}
LARGE_MB=${BENCH_LARGE_MB:-1000}
RUNS=${BENCH_RUNS:-5}
SIDES=(enc restic clear)
die() { echo "bench-snapshot-encrypt.sh: $*" >&2; exit 1; }
for t in restic python3 bc; do
  command -v "$t" >/dev/null || die "$t is required (apt-get install -y $t)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is required (apt-get install -y time)"
if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release
fi
# shellcheck source=scripts/bench-corpus.sh
. "$ROOT/scripts/bench-corpus.sh"
mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/snapshot-encrypt.XXXXXX")
SHM=$(mktemp -d /dev/shm/ops-bench-snapshot-encrypt.XXXXXX)
trap 'rm -rf "$WORK" "$SHM"' EXIT
RES=$WORK/results # lines: corpus op side seconds kib

unset RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE RESTIC_PASSWORD_COMMAND OPS_PASSWORD_COMMAND OPS_IDENTITY_FILE
printf 'ops-bench\n' >"$WORK/pass"
chmod 600 "$WORK/pass"
export RESTIC_PASSWORD_FILE=$WORK/pass RESTIC_CACHE_DIR=$WORK/cache/restic

timed() {
  local c=$1 op=$2 side=$3
  shift 3
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" ||
    die "$c $op $side failed: $* :: $(tail -n 4 "$WORK/err")"
  echo "$c $op $side $(tail -n 1 "$WORK/time")" >>"$RES"
}

# ours SIDE: sets OURS to ops-snapshot with its own cache, keyed when encrypted.
ours() {
  if [[ $1 == enc ]]; then
    OURS=(env OPS_CACHE_DIR="$WORK/cache/$1" OPS_PASSWORD_FILE="$WORK/pass" "$BIN/ops-snapshot")
  else
    OURS=(env -u OPS_PASSWORD_FILE OPS_CACHE_DIR="$WORK/cache/$1" "$BIN/ops-snapshot")
  fi
}

fresh() {
  rm -rf "$WORK/repo-$1" "$WORK/cache/$1"
  [[ $1 != restic ]] || restic init -r "$WORK/repo-restic" --repository-version 2 >/dev/null
}

snap() { # SIDE CORPUS OP
  local side=$1 c=$2 op=$3 src=$BENCH_DIR/$2 repo=$WORK/repo-$1
  ours "$side"
  case $side in
    enc) timed "$c" "$op" "$side" "${OURS[@]}" create "$src" --repo "$repo" --encrypt --json ;;
    clear) timed "$c" "$op" "$side" "${OURS[@]}" create "$src" --repo "$repo" --json ;;
    restic) timed "$c" "$op" restic env -C "$src" restic -r "$repo" backup --json . ;;
  esac
  sync
}

restore() { # SIDE CORPUS
  local side=$1 c=$2 repo=$WORK/repo-$1 dst=$SHM/restore
  rm -rf "$dst"
  ours "$side"
  case $side in
    enc | clear) timed "$c" restore "$side" "${OURS[@]}" restore latest --repo "$repo" --to "$dst" ;;
    restic) timed "$c" restore restic restic -r "$repo" restore latest --target "$dst" ;;
  esac
  rm -rf "$dst"
}

order() {
  local n=${#SIDES[@]} j
  for ((j = 0; j < n; j++)); do echo "${SIDES[(j + $1) % n]}"; done
}

corpus small "$SMALL_MB"
corpus large "$LARGE_MB"
for c in small large; do
  echo "benchmarking $c ($RUNS runs per side)..." >&2
  tar -cf - -C "$BENCH_DIR/$c" . | cat >/dev/null
  for ((i = 0; i < RUNS; i++)); do
    for side in $(order "$i"); do
      fresh "$side"
      snap "$side" "$c" first
      snap "$side" "$c" same
    done
  done
  for ((i = 0; i < RUNS; i++)); do
    for side in $(order "$i"); do restore "$side" "$c"; done
  done
done

col() { awk -v c="$1" -v o="$2" -v s="$3" -v f="$4" '$1==c && $2==o && $3==s {print $f}' "$RES" | sort -g; }
median() { awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
spread() { awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }
target() { case $1 in first | restore) echo 0.5 ;; same) echo 0.3 ;; esac; }
echo
echo "- corpora: small $SMALL_MB MB, large $LARGE_MB MB; repositories and caches on $BENCH_DIR ($(df --output=fstype "$BENCH_DIR" | tail -n 1)), restores into /dev/shm; $RUNS paired runs, order rotating"
echo "- $(restic version | head -n 1); restic repository version 2 (AES-256, zstd auto)"
echo "| corpus | operation | encrypted s (spread) | restic s (spread) | clear s | encrypted/restic | target | met | encrypted/clear | peak RSS enc/restic MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in small large; do
  for op in first same restore; do
    e=$(col $c $op enc 4 | median); r=$(col $c $op restic 4 | median); k=$(col $c $op clear 4 | median)
    ratio=$(echo "scale=3; $e / $r" | bc)
    met=$(echo "$ratio <= $(target $op)" | bc)
    rss_e=$(($(col $c $op enc 5 | tail -n 1) / 1024)); rss_r=$(($(col $c $op restic 5 | tail -n 1) / 1024))
    echo "| $c | $op | $e ($(col $c $op enc 4 | spread)) | $r ($(col $c $op restic 4 | spread)) | $k | $ratio | ≤ $(target $op) | $([[ $met == 1 ]] && echo yes || echo no) | $(echo "scale=2; $e / $k" | bc) | $rss_e / $rss_r |"
  done
done
