#!/usr/bin/env bash
# bench-wal.sh - what archive_command costs per WAL segment:
#   ops-backup wal-push SEGMENT --to DIR
#   vs  pgbackrest --stanza=bench archive-push SEGMENT   (synchronous, zst level 3)
#
# It starts a throwaway PostgreSQL cluster (archive_mode on, each finished
# segment copied to a spool directory), writes until the spool holds
# BENCH_WAL_SEGMENTS real segments, then pushes all of them with each tool
# into a fresh archive on disk (under /var/tmp), alternating which goes
# first, BENCH_RUNS times. It prints the median seconds per segment, the
# spread, the ratio, the archive sizes and the peak RSS of one push.
# Skipped (exit 0) when pgbackrest is not installed (apt-get install -y pgbackrest).
#
#   BENCH_WAL_SEGMENTS  segments pushed per run (default 200)
#   BENCH_RUNS          runs per side (default 3)
#   OPS_BIN             dir with prebuilt ops-* binaries (default: cargo build --release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEGMENTS=${BENCH_WAL_SEGMENTS:-200}
RUNS=${BENCH_RUNS:-3}
die() { echo "bench-wal.sh: $*" >&2; exit 1; }
[[ $SEGMENTS =~ ^[1-9][0-9]*$ ]] || die "BENCH_WAL_SEGMENTS must be a positive integer"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
if ! command -v pgbackrest >/dev/null; then
  echo "bench-wal.sh: pgbackrest not installed (apt-get install -y pgbackrest); skipped"
  exit 0
fi
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)
[[ -x ${PGBIN:-}/initdb ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release
fi

WORK=$(mktemp -d /var/tmp/ops-bench-wal.XXXXXX)
chmod 755 "$WORK"
DATA=$WORK/data
as_pg() {
  if [[ $(id -u) == 0 ]]; then (cd "$WORK" && runuser -u postgres -- "$@"); else "$@"; fi
}
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -w stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
mkdir -p "$WORK/spool" "$WORK/sock" "$WORK/bin"
cp "$BIN/ops-backup" "$WORK/bin/"
[[ $(id -u) == 0 ]] && chown -R postgres:postgres "$WORK"

as_pg "$PGBIN/initdb" -D "$DATA" -A trust -U postgres --no-sync >/dev/null
cat >>"$DATA/postgresql.conf" <<EOF
unix_socket_directories = '$WORK/sock'
listen_addresses = ''
wal_level = replica
archive_mode = on
archive_command = 'cp %p $WORK/spool/%f'
max_wal_size = 4GB
EOF
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w start >/dev/null
psql() { command psql -X -q -A -t -h "$WORK/sock" -U postgres -d postgres "$@"; }
psql -c "CREATE TABLE t (id bigint, pad text)"
while (($(find "$WORK/spool" -name '????????????????????????' | wc -l) < SEGMENTS)); do
  psql -c "INSERT INTO t SELECT g, md5(g::text) || repeat('x', 100) FROM generate_series(1, 500000) g" \
    -c "SELECT pg_switch_wal()" >/dev/null
  sleep 0.2
done
mapfile -t WAL < <(find "$WORK/spool" -name '????????????????????????' | sort | head -n "$SEGMENTS")

export PGBACKREST_CONFIG=$WORK/pgbackrest.conf
cat >"$PGBACKREST_CONFIG" <<EOF
[global]
repo1-path=$WORK/pgbr
compress-type=zst
compress-level=3
log-level-console=warn
log-path=$WORK/log
lock-path=$WORK/lock
start-fast=y
process-max=2
[bench]
pg1-path=$DATA
pg1-socket-path=$WORK/sock
EOF
[[ $(id -u) == 0 ]] && chown postgres:postgres "$PGBACKREST_CONFIG"

ours() {
  as_pg rm -rf "$WORK/ours"
  for f in "${WAL[@]}"; do as_pg "$WORK/bin/ops-backup" wal-push "$f" --to "$WORK/ours"; done
}
theirs() {
  as_pg rm -rf "$WORK/pgbr"
  as_pg pgbackrest --stanza=bench stanza-create >/dev/null
  for f in "${WAL[@]}"; do as_pg pgbackrest --stanza=bench archive-push "$f"; done
}
timed() {
  local start end
  start=$(date +%s.%N)
  "$1"
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
declare -a OURS THEIRS
for ((i = 0; i < RUNS; i++)); do
  if ((i % 2 == 0)); then
    OURS+=("$(timed ours)"); THEIRS+=("$(timed theirs)")
  else
    THEIRS+=("$(timed theirs)"); OURS+=("$(timed ours)")
  fi
done
stats() { printf '%s\n' "$@" | sort -g | awk -v n="$SEGMENTS" '{a[NR]=$1/n} END {printf "%.4f %.4f %.4f", a[int((NR+1)/2)], a[1], a[NR]}'; }
read -r om omin omax <<<"$(stats "${OURS[@]}")"
read -r tm tmin tmax <<<"$(stats "${THEIRS[@]}")"
rss_ours=$(as_pg /usr/bin/time -f %M "$WORK/bin/ops-backup" wal-push "${WAL[0]}" --to "$WORK/rss" 2>&1 >/dev/null | tail -n 1)
size_ours=$(du -sb "$WORK/ours" | cut -f1)
size_theirs=$(du -sb "$WORK/pgbr/archive" | cut -f1)
echo
echo "### WAL archiving: ${#WAL[@]} real segments (16 MiB) per run, archives on disk ($WORK), $RUNS paired runs"
echo
echo "| per segment | ours (s) | pgbackrest archive-push (s) | ratio |"
echo "|---|---|---|---|"
printf '| median (min-max) | %s (%s-%s) | %s (%s-%s) | %.2f |\n' "$om" "$omin" "$omax" "$tm" "$tmin" "$tmax" "$(echo "$om / $tm" | bc -l)"
printf '| archive size | %d MiB | %d MiB | %.2f |\n' $((size_ours >> 20)) $((size_theirs >> 20)) "$(echo "$size_ours / $size_theirs" | bc -l)"
echo
echo "peak RSS of one wal-push: $((rss_ours / 1024)) MiB"
