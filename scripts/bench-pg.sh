#!/usr/bin/env bash
# bench-pg.sh - compare the PostgreSQL paths of ops-backup and ops-verify
# ("ours") against the plain tools ("theirs"):
#   backup:       ops-backup create URL --to DIR --json
#                 vs  pg_dump (plain) | zstd -3 -T0
#   restore-test: ops-verify ARTIFACT --restore-test --json
#                 vs  createdb && zstd -dc ARTIFACT | psql --single-transaction
#   health:       ops-health --postgres URL --json
#                 vs  psql -c 'SELECT count(*) FROM pg_stat_activity'
#
# It starts a throwaway PostgreSQL cluster of its own (newest server under
# /usr/lib/postgresql/*/bin, data and Unix socket in a temp dir under /tmp,
# trust auth, no TCP listener, fsync off; run as the `postgres` user when the
# script runs as root), loads pgbench data into database `bench`, then runs
# paired, alternating runs (ours, theirs, ours, ...) and reports the median
# wall time and peak RSS (/usr/bin/time -f '%e %M') of each side as a
# Markdown table. Backup outputs go to a private dir under /dev/shm (tmpfs).
# The cluster is stopped and its temp dir removed on exit.
#
# Tuning (env vars):
#   BENCH_PG_SCALE  pgbench scale factor (default 20, ~15 MB of data per unit)
#   BENCH_RUNS      timed runs per side and step (default 3)
#   OPS_BIN         dir holding prebuilt ops-* binaries (default: cargo build --release)
# RSS is reported in MiB. Peak RSS is that of the client-side processes only;
# the server's backends are not counted on either side.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=${BENCH_PG_SCALE:-20}
RUNS=${BENCH_RUNS:-3}

die() { echo "bench-pg.sh: $*" >&2; exit 1; }

[[ $SCALE =~ ^[1-9][0-9]*$ ]] || die "BENCH_PG_SCALE must be a positive integer, not '$SCALE'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (apt-get install -y time)"
for t in zstd pg_dump psql createdb dropdb python3; do
  command -v "$t" >/dev/null || die "$t is required"
done

# The newest PostgreSQL server binaries.
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)
[[ -n $PGBIN && -x $PGBIN/initdb && -x $PGBIN/pg_ctl ]] ||
  die "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install -y postgresql)"
if [[ -x $PGBIN/pgbench ]]; then
  PGBENCH=$PGBIN/pgbench
else
  PGBENCH=$(command -v pgbench) || die "pgbench is required"
fi

if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release
fi
for t in ops-backup ops-verify; do
  [[ -x $BIN/$t ]] || die "$BIN/$t not found or not executable"
done

PGDIR=$(mktemp -d /tmp/ops-bench-pg.XXXXXX)
SHM=$(mktemp -d /dev/shm/ops-bench-pg.XXXXXX)
DATA=$PGDIR/data
SOCK=$PGDIR/sock
STARTED=0

# as_pg CMD...: run CMD as the postgres user if we are root (the server
# refuses root), from a directory that user can read.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    (cd "$PGDIR" && runuser -u postgres -- "$@")
  else
    (cd "$PGDIR" && "$@")
  fi
}

cleanup() {
  if [[ $STARTED -eq 1 ]]; then
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -w stop -m fast >/dev/null 2>&1 ||
      echo "bench-pg.sh: warning: pg_ctl stop failed; see $PGDIR/server.log" >&2
  fi
  rm -rf "$PGDIR" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

RES=$SHM/results # lines: op side seconds kib

# --- the throwaway cluster ---------------------------------------------------
chmod 755 "$PGDIR"
mkdir "$SOCK"
if [[ $(id -u) -eq 0 ]]; then
  chown -R postgres: "$PGDIR"
fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CONN=(-h "$SOCK" -p "$PORT" -U postgres)
URL="postgres://postgres@/bench?host=$SOCK&port=$PORT"

echo "starting PostgreSQL ($PGBIN) in $PGDIR, port $PORT..." >&2
as_pg "$PGBIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --no-locale --no-sync >"$PGDIR/initdb.log" 2>&1 ||
  { cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
STARTED=1
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$PGDIR/server.log" -w \
  -o "-k $SOCK -p $PORT -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB -c checkpoint_timeout=30min" \
  start >/dev/null ||
  { cat "$PGDIR/server.log" >&2; die "pg_ctl start failed"; }

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "${CONN[@]}" -d "$1" -c "$2"; }

echo "loading pgbench data, scale $SCALE..." >&2
createdb "${CONN[@]}" bench
"$PGBENCH" -i -q -s "$SCALE" "${CONN[@]}" bench >"$SHM/pgbench.log" 2>&1 ||
  { cat "$SHM/pgbench.log" >&2; die "pgbench -i failed"; }
q postgres CHECKPOINT
DBSIZE=$(q postgres "SELECT pg_size_pretty(pg_database_size('bench'))")
DBBYTES=$(q postgres "SELECT pg_database_size('bench')")
echo "database bench: $DBSIZE" >&2

# --- timing helpers ----------------------------------------------------------
# timed OP SIDE CMD...: run CMD under /usr/bin/time, append the result.
timed() {
  local op=$1 side=$2
  shift 2
  if ! /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" >"$SHM/out" 2>"$SHM/err"; then
    cat "$SHM/out" "$SHM/err" "$SHM/time" >&2
    die "$op $side failed: $*"
  fi
  echo "$op $side $(tail -n 1 "$SHM/time")" >>"$RES"
}

# json_field FILE KEY: KEY of the first JSON line in FILE that has it.
json_field() {
  python3 - "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if isinstance(rec, dict) and sys.argv[2] in rec:
        print(rec[sys.argv[2]] if not isinstance(rec[sys.argv[2]], (dict, list)) else json.dumps(rec[sys.argv[2]]))
        break
PY
}

# Databases other than the ones we expect; ours must not leave scratch dbs.
stray_dbs() {
  q postgres "SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database
              WHERE datname NOT IN ('postgres', 'template0', 'template1', 'bench')"
}

: >"$RES"
STRAY=

# --- backup ------------------------------------------------------------------
echo "benchmarking backup ($RUNS runs per side)..." >&2
pg_dump "${CONN[@]}" bench >/dev/null # warm the page cache and shared buffers
# shellcheck disable=SC2016 # "$1"... are meant to expand in the inner bash -c
for ((i = 0; i < RUNS; i++)); do
  rm -rf "$SHM/bo"
  timed backup ours "$BIN/ops-backup" create "$URL" --to "$SHM/bo" --json
  cp "$SHM/out" "$SHM/backup.json"
  rm -f "$SHM/bt.sql.zst"
  timed backup theirs bash -c 'set -o pipefail; pg_dump -h "$1" -p "$2" -U postgres bench | zstd -3 -T0 -q >"$3"' \
    _ "$SOCK" "$PORT" "$SHM/bt.sql.zst"
done
ART=$(json_field "$SHM/backup.json" path)
[[ -n $ART && $ART != /* ]] && ART=$PWD/$ART
[[ -n $ART && -f $ART ]] || die "ops-backup reported no usable artifact path: $(cat "$SHM/backup.json")"
ART_BYTES=$(stat -c %s "$ART")
THEIRS_BYTES=$(stat -c %s "$SHM/bt.sql.zst")
rm -f "$SHM/bt.sql.zst"

# --- restore test ------------------------------------------------------------
echo "benchmarking restore-test ($RUNS runs per side)..." >&2
# shellcheck disable=SC2016 # "$1"... are meant to expand in the inner bash -c
for ((i = 0; i < RUNS; i++)); do
  timed restore-test ours "$BIN/ops-verify" "$ART" --restore-test --json
  ok=$(json_field "$SHM/out" verify)
  [[ $ok == *'"ok": true'* ]] || die "ops-verify exited 0 but did not report ok: $(cat "$SHM/out")"
  s=$(stray_dbs)
  [[ -z $s ]] || { STRAY+=" $s"; echo "bench-pg.sh: warning: databases left after ops-verify: $s" >&2; }
  db=bench_fresh_$i
  PGOPTIONS="-c client_min_messages=warning" dropdb --if-exists "${CONN[@]}" "$db"
  timed restore-test theirs bash -c 'createdb -h "$1" -p "$2" -U postgres "$3" &&
      zstd -dc "$4" | psql -X -q -v ON_ERROR_STOP=1 --single-transaction -o /dev/null -h "$1" -p "$2" -U postgres -d "$3"' \
    _ "$SOCK" "$PORT" "$db" "$ART"
  dropdb "${CONN[@]}" "$db"
done

# --- health ------------------------------------------------------------------
echo "benchmarking health ($RUNS runs per side)..." >&2
for ((i = 0; i < RUNS; i++)); do
  /usr/bin/time -f '%e %M' -o "$SHM/time" "$BIN/ops-health" --postgres "$URL" --json >"$SHM/out" 2>"$SHM/err" || true
  grep -q '"check":"pg_dump"' "$SHM/out" || die "ops-health --postgres reported no pg_dump check: $(cat "$SHM/out" "$SHM/err")"
  echo "health ours $(tail -n 1 "$SHM/time")" >>"$RES"
  timed health theirs psql -X -q -A -t "${CONN[@]}" -d bench -c "SELECT count(*) FROM pg_stat_activity"
done

# --- report ------------------------------------------------------------------
# col OP SIDE FIELD(3=secs,4=kib): print the values, one per line, sorted.
col() { awk -v o="$1" -v s="$2" -v f="$3" '$1==o && $2==s {print $f}' "$RES" | sort -g; }
median() { awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
max_mib() { tail -n 1 | awk '{printf "%.1f", $1/1024}'; }

PGVER=$(q postgres "SHOW server_version")
echo
echo "## ops-* PostgreSQL benchmark"
echo
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown CPU), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "- server: PostgreSQL $PGVER (throwaway cluster, Unix socket only, fsync=off, synchronous_commit=off, full_page_writes=off; data dir under /tmp)"
echo "- database: pgbench scale $SCALE, $DBSIZE ($DBBYTES bytes)"
echo "- artifact: ours $ART_BYTES bytes ($(basename "$ART")), theirs (pg_dump | zstd -3 -T0) $THEIRS_BYTES bytes"
echo "- backup outputs go to /dev/shm (tmpfs); medians of $RUNS paired, alternating runs"
echo "- theirs: backup = pg_dump (plain) | zstd -3 -T0; restore-test = createdb && zstd -dc | psql --single-transaction; health = psql -c 'SELECT count(*) FROM pg_stat_activity' (one query; ops-health runs all its postgres findings and pg_dump --version)"
echo "- restore-test: theirs includes createdb but not dropdb; ours includes creating and dropping its scratch database and counting rows"
echo "- peak RSS is of the client side only (the largest single process; for a pipeline not the sum); server backends are not counted"
if [[ -n $STRAY ]]; then
  echo "- WARNING: databases left behind after ops-verify --restore-test:$STRAY"
fi
echo
echo "| operation | ours median s | theirs median s | ratio ours/theirs | ours peak RSS MiB | theirs peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for op in backup restore-test health; do
  o=$(col "$op" ours 3 | median)
  t=$(col "$op" theirs 3 | median)
  awk -v op="$op" -v o="$o" -v t="$t" \
    -v ro="$(col "$op" ours 4 | max_mib)" -v rt="$(col "$op" theirs 4 | max_mib)" \
    'BEGIN {
      ratio = (t > 0) ? sprintf("%.2f", o / t) : "n/a"
      printf "| %s | %.2f | %.2f | %s | %s | %s |\n", op, o, t, ratio, ro, rt
    }'
done
