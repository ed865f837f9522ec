#!/usr/bin/env bash
# bench-snapshot.sh - ops-snapshot ("ours") against restic and borg on the
# corpora of bench.sh (issue 7, "Performance"). For each corpus (many small
# files; a few large files), in one run:
#
#   1. first snapshot into a fresh repository: wall time, peak RSS
#      (ops-snapshot create; restic backup; borg create --compression zstd,3)
#   2. re-snapshot with nothing changed, on the same repository
#   3. 1% of the corpus changed (deterministic, see mutate below), snapshot
#      again: repository growth (du -sb before/after; restic picks a random
#      chunker polynomial per repository, so its growth varies from run to run)
#   4. restore of the first snapshot (ops-snapshot restore; restic restore;
#      borg extract)
#   5. repository size after the first snapshot (du -sb)
#   6. ours only: peak RSS of the first snapshot at two sizes of the small
#      corpus (BENCH_HALF_MB and BENCH_SMALL_MB)
#
# Steps 1-3 run together, BENCH_RUNS times, each on a fresh copy of the corpus
# and fresh repositories; step 4 restores, BENCH_RUNS times, from the
# repositories of the last run. The runs of the tools are paired and
# alternating (the order rotates each run), timed with /usr/bin/time -f
# '%e %M'; the table shows medians and the largest peak RSS. The corpora are generated once under BENCH_DIR
# (scripts/bench-corpus.sh, shared with bench.sh) and copied, per corpus, into
# a private directory in /dev/shm (tmpfs), where the repositories, caches and
# restores also live: the disk writes small files slowly, and step 3 edits the
# copy, never the corpus.
#
# restic and borg come from Debian: when missing the script runs apt-get update
# and apt-get install -y restic borgbackup; a tool that still is not there is
# left out with a note. When $BIN/ops-snapshot does not exist (yet), ours is
# left out with a note and the restic and borg baselines are still measured.
#
# Tuning (env vars):
#   BENCH_DIR       where the corpora live            (default /var/tmp/ops-bench)
#   BENCH_SMALL_MB  size of the small-files corpus    (default 500)
#   BENCH_LARGE_MB  size of the large-files corpus    (default 1000)
#   BENCH_HALF_MB   second small-corpus size, step 6  (default BENCH_SMALL_MB/2)
#   BENCH_RUNS      timed runs per tool and step      (default 3)
#   OPS_BIN         dir holding prebuilt ops-* binaries (default: cargo build --release)
# MB = 10^6 bytes; RSS is reported in MiB.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/ops-bench}
SMALL_MB=${BENCH_SMALL_MB:-500}
LARGE_MB=${BENCH_LARGE_MB:-1000}
HALF_MB=${BENCH_HALF_MB:-$((SMALL_MB / 2))}
RUNS=${BENCH_RUNS:-3}
SIDES=(ours restic borg)
RSS_LIMIT_MIB=200

die() { echo "bench-snapshot.sh: $*" >&2; exit 1; }
NOTES=()
note() { echo "bench-snapshot.sh: $*" >&2; NOTES+=("$*"); }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"

# apt_install PKG...: apt-get install -y (after one apt-get update); false if that is not possible.
APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null || return 1
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || return 1
    sudo=(sudo -n)
  fi
  if [[ -z $APT_UPDATED ]]; then
    echo "running apt-get update..." >&2
    "${sudo[@]}" apt-get update -qq >&2 || return 1
    APT_UPDATED=1
  fi
  echo "running apt-get install -y $*..." >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

[[ -x /usr/bin/time ]] || apt_install time || true
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (apt-get install -y time)"
for t in python3 du diff cp; do
  command -v "$t" >/dev/null || die "$t is required"
done

# OFF[side]: why a tool is left out ("" = measured).
declare -A OFF=()
for side in "${SIDES[@]}"; do OFF[$side]=; done
on() { [[ -z ${OFF[$1]} ]]; }
drop() { # SIDE WHY
  on "$1" || return 0
  OFF[$1]=$2
  note "$1 left out: $2"
}

missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
if ((${#missing[@]})); then
  apt_install "${missing[@]}" || echo "bench-snapshot.sh: apt-get install -y ${missing[*]} failed" >&2
fi
command -v restic >/dev/null || drop restic "restic not installed (apt-get install -y restic failed)"
command -v borg >/dev/null || drop borg "borg not installed (apt-get install -y borgbackup failed)"

if [[ -n ${OPS_BIN:-} ]]; then
  BIN=$OPS_BIN
elif (cd "$ROOT" && cargo build --release --quiet); then
  BIN=$ROOT/target/release
else
  BIN=$ROOT/target/release
  drop ours "cargo build --release failed"
fi
if on ours && [[ ! -x $BIN/ops-snapshot ]]; then
  drop ours "$BIN/ops-snapshot not found (not built yet?): measuring restic and borg only, as the baseline"
fi

SHM=$(mktemp -d /dev/shm/ops-bench-snapshot.XXXXXX) # mode 0700
trap 'rm -rf "$SHM"' EXIT
RES=$SHM/results # lines: corpus op side seconds kib
SIZ=$SHM/sizes   # lines: corpus metric side bytes
: >"$RES"
: >"$SIZ"

need=$(((LARGE_MB > SMALL_MB ? LARGE_MB : SMALL_MB) * 4 * 1000000))
avail=$(df --output=avail -B1 /dev/shm | tail -n 1)
((avail > need)) || die "/dev/shm has $avail bytes free; this needs about $need (4x the larger corpus)"

# Private caches and no inherited repository settings.
unset RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND BORG_REPO BORG_PASSPHRASE
export RESTIC_PASSWORD=ops-bench RESTIC_CACHE_DIR=$SHM/cache/restic
export BORG_BASE_DIR=$SHM/cache/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export OPS_CACHE_DIR=$SHM/cache/ours

# gen and corpus NAME MB [KIND]: the generated corpora, shared with bench.sh.
# shellcheck source=scripts/bench-corpus.sh
. "$ROOT/scripts/bench-corpus.sh"

# mutate DIR file|block: change 1% of the corpus copy in DIR, deterministically.
# Files are taken in path order; "file": every 100th file (the 50th, 150th,
# ...) gets min(4 KiB, size) bytes overwritten in its middle; "block": every
# 100th 1 MiB block of the files gets 4 KiB overwritten in its middle. Sizes
# stay the same; mtime and ctime change. A corpus too small for that gets
# one edit, in the middle of its largest file.
mutate() {
  python3 - "$@" <<'PY'
import os, random, sys
root, unit = sys.argv[1], sys.argv[2]
rng = random.Random(4321)
EDIT, MIB = 4096, 1 << 20
files = []
for d, dirs, names in os.walk(root):
    dirs.sort()
    for n in names:
        p = os.path.join(d, n)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append(os.path.relpath(p, root))
files.sort()
k = changed = edits = written = 0
plan = []
for rel in files:
    p = os.path.join(root, rel)
    size = os.path.getsize(p)
    offs = []
    if unit == "file":
        if k % 100 == 50:
            offs.append(max(0, (size - EDIT) // 2))
        k += 1
    else:
        for b in range((size + MIB - 1) // MIB):
            if k % 100 == 50:
                offs.append(max(0, min(b * MIB + (MIB - EDIT) // 2, size - EDIT)))
            k += 1
    if offs and size:
        plan.append((p, size, offs))
if not plan and files:  # a corpus too small for 1%: change one spot, the middle of the largest file
    p, size = max(((os.path.join(root, f), os.path.getsize(os.path.join(root, f))) for f in files),
                  key=lambda x: x[1])
    if size:
        plan.append((p, size, [max(0, (size - EDIT) // 2)]))
for p, size, offs in plan:
    with open(p, "r+b") as f:
        for off in offs:
            n = min(EDIT, size - off)
            f.seek(off)
            f.write(rng.randbytes(n))
            edits += 1
            written += n
    changed += 1
print("%d of %d files changed (%d edits of <= 4 KiB, %d bytes overwritten; every 100th %s)"
      % (changed, len(files), edits, written, "file" if unit == "file" else "1 MiB block"))
PY
}

# timed CORPUS OP SIDE CMD...: run CMD under /usr/bin/time, append the result;
# on failure drop SIDE (with its error) and return 1. Output in $SHM/out, $SHM/err.
timed() {
  local c=$1 op=$2 side=$3
  shift 3
  if ! /usr/bin/time -f '%e %M' -o "$SHM/time" "$@" >"$SHM/out" 2>"$SHM/err"; then
    drop "$side" "$c $op failed: $* :: $(tail -n 4 "$SHM/err" | tr '\n' ' ')$(head -n 1 "$SHM/time")"
    return 1
  fi
  echo "$c $op $side $(tail -n 1 "$SHM/time")" >>"$RES"
}

size_of() { du -sb "$1" | cut -f1; }
record_size() { echo "$1 $2 $3 $4" >>"$SIZ"; } # CORPUS METRIC SIDE BYTES

# json_field FILE KEY: KEY of the last JSON line of FILE that has it.
json_field() {
  python3 - "$@" <<'PY'
import json, sys
val = None
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if isinstance(rec, dict) and sys.argv[2] in rec:
        val = rec[sys.argv[2]]
if val is None:
    sys.exit("no %r in %s" % (sys.argv[2], sys.argv[1]))
print(val)
PY
}

# order RUN: the tools, rotated by RUN so that none always goes first.
order() {
  local n=${#SIDES[@]} j
  for ((j = 0; j < n; j++)); do echo "${SIDES[(j + $1) % n]}"; done
}

# fresh SIDE: an empty repository $SHM/repo-SIDE and no cache (untimed);
# ours creates its repository on first use.
fresh() {
  local side=$1 repo=$SHM/repo-$1
  rm -rf "$repo" "$SHM/cache/$side"
  case $side in
    ours) return 0 ;;
    restic) restic init -r "$repo" --repository-version 2 ;;
    borg) borg init --encryption=none "$repo" ;;
  esac >"$SHM/init" 2>&1 || { drop "$side" "init failed: $(tail -n 3 "$SHM/init" | tr '\n' ' ')"; return 1; }
}

# snap SIDE CORPUS OP NAME: snapshot $SHM/src/CORPUS into the repository of SIDE.
# restic and borg run in the source dir on ".", so they restore its contents
# directly into the target, as ours does.
snap() {
  local side=$1 c=$2 op=$3 name=$4 src=$SHM/src/$2 repo=$SHM/repo-$1
  case $side in
    ours) timed "$c" "$op" ours "$BIN/ops-snapshot" create "$src" --repo "$repo" --name "$c" --json ;;
    restic) timed "$c" "$op" restic env -C "$src" restic -r "$repo" backup --json . ;;
    borg) timed "$c" "$op" borg env -C "$src" borg create --compression zstd,3 "$repo::$name" . ;;
  esac
}

# restore SIDE CORPUS: restore the first snapshot into $SHM/restore (absent before).
declare -A FIRST=()
restore() {
  local side=$1 c=$2 repo=$SHM/repo-$1 dst=$SHM/restore
  case $side in
    ours) timed "$c" restore ours "$BIN/ops-snapshot" restore "${FIRST[ours]}" --repo "$repo" --to "$dst" --json ;;
    restic) timed "$c" restore restic restic -r "$repo" restore "${FIRST[restic]}" --target "$dst" ;;
    borg) mkdir "$dst" && timed "$c" restore borg env -C "$dst" borg extract "$repo::first" ;;
  esac
}

# bench CORPUS UNIT: steps 1-5 on a /dev/shm copy of $BENCH_DIR/CORPUS. Each
# run copies the corpus afresh, snapshots it into fresh repositories (first,
# then nothing changed), changes 1% of the copy and snapshots it again; the
# restores are of the first snapshots of the last run.
bench() {
  local c=$1 unit=$2 src=$SHM/src/$1 i side before after
  echo "benchmarking $c ($RUNS runs per tool)..." >&2
  for ((i = 0; i < RUNS; i++)); do
    rm -rf "$SHM/src"
    mkdir -p "$SHM/src"
    cp -a "$BENCH_DIR/$c" "$src"
    for side in $(order "$i"); do
      on "$side" || continue
      echo "  run $((i + 1))/$RUNS: $side first snapshot, then nothing-changed re-snapshot" >&2
      fresh "$side" || continue
      snap "$side" "$c" first first || continue
      case $side in
        ours) FIRST[ours]=$(json_field "$SHM/out" id) || { drop ours "create printed no snapshot id: $(head -c 300 "$SHM/out")"; continue; } ;;
        restic) FIRST[restic]=$(json_field "$SHM/out" snapshot_id) || { drop restic "backup printed no snapshot_id"; continue; } ;;
      esac
      record_size "$c" repo "$side" "$(size_of "$SHM/repo-$side")"
      [[ ! -d $SHM/cache/$side ]] || record_size "$c" cache "$side" "$(size_of "$SHM/cache/$side")"
      snap "$side" "$c" same same || continue
    done
    echo "  run $((i + 1))/$RUNS: changing 1% of $c" >&2
    CHANGED[$c]=$(mutate "$src" "$unit")
    for side in $(order "$i"); do
      on "$side" || continue
      echo "  run $((i + 1))/$RUNS: $side snapshot after the change" >&2
      before=$(size_of "$SHM/repo-$side")
      snap "$side" "$c" changed changed || continue
      after=$(size_of "$SHM/repo-$side")
      record_size "$c" growth "$side" "$((after - before))"
    done
  done
  rm -rf "$SHM/src"
  for ((i = 0; i < RUNS; i++)); do
    for side in $(order "$i"); do
      on "$side" || continue
      echo "  run $((i + 1))/$RUNS: $side restore of the first snapshot" >&2
      rm -rf "$SHM/restore"
      restore "$side" "$c" || continue
      if ((i == 0)) && ! diff -r --no-dereference -q "$BENCH_DIR/$c" "$SHM/restore" >"$SHM/diff" 2>&1; then
        note "$c: the restore by $side differs from the corpus: $(head -n 3 "$SHM/diff" | tr '\n' ' ')"
      fi
    done
  done
  rm -rf "$SHM/restore" "$SHM"/repo-* "$SHM/cache"
}

# rss_scaling: step 6, ours' first snapshot of a smaller small corpus.
rss_scaling() {
  local c=small-$HALF_MB i
  on ours || return 0
  corpus "$c" "$HALF_MB" small
  echo "benchmarking $c (ours only, peak RSS; $RUNS runs)..." >&2
  rm -rf "$SHM/src"
  mkdir -p "$SHM/src"
  cp -a "$BENCH_DIR/$c" "$SHM/src/$c"
  for ((i = 0; i < RUNS; i++)); do
    fresh ours && snap ours "$c" first first || return 0
  done
  rm -rf "$SHM/src" "$SHM/repo-ours"
}

# col CORPUS OP SIDE FIELD(4=secs,5=kib): the values, one per line, sorted.
col() { awk -v c="$1" -v o="$2" -v s="$3" -v f="$4" '$1==c && $2==o && $3==s {print $f}' "$RES" | sort -g; }
scol() { awk -v c="$1" -v m="$2" -v s="$3" '$1==c && $2==m && $3==s {print $4}' "$SIZ" | sort -g; }
median() { awk '{a[NR]=$1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
max_mib() { tail -n 1 | awk '{printf "%.1f", $1/1024}'; }
mib_all() { awk -v c="$1" -v s="$2" '$1==c && $3==s {print $5}' "$RES" | sort -g | max_mib; } # CORPUS SIDE: largest RSS of any step

# row CORPUS METRIC FMT TARGET OURS RESTIC BORG: one table line; a missing value is "".
# TARGET: comma-separated "r=F" (ours <= F x restic), "b=F" (ours <= F x borg),
# "lt=N" (ours < N MiB), or "-" (none).
row() {
  awk -v c="$1" -v m="$2" -v fmt="$3" -v t="$4" -v o="$5" -v r="$6" -v b="$7" '
    function fv(v) { return v == "" ? "—" : sprintf(fmt, v) }
    function ratio(a, d) { return (a == "" || d == "" || d + 0 == 0) ? "—" : sprintf("%.2f", a / d) }
    BEGIN {
      txt = ""; met = "yes"; gaps = ""
      n = (t == "-") ? 0 : split(t, parts, ",")
      for (k = 1; k <= n; k++) {
        split(parts[k], kv, "=")
        if (kv[1] == "lt") { desc = "< " kv[2] " MiB"; other = "" }
        else {
          name = (kv[1] == "r") ? "restic" : "borg"
          other = (kv[1] == "r") ? r : b
          desc = (kv[2] == 1) ? "≤ " name : "≤ " kv[2] "× " name
        }
        txt = txt (txt == "" ? "" : ", ") desc
        if (o == "") continue
        if (kv[1] == "lt") ok = (o + 0 < kv[2] + 0)
        else if (other == "") { gaps = gaps " no " name; continue }
        else ok = (o + 0 <= kv[2] * other)
        if (!ok) met = "**no**"
      }
      if (n == 0) { txt = "—"; met = "" }
      else if (o == "") met = "n/a"
      else if (gaps != "") met = met " (" substr(gaps, 2) ")"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, m, fv(o), fv(r), fv(b), ratio(o, r), ratio(o, b), txt, met
    }'
}

declare -A CHANGED=()
read -r LOAD_START _ </proc/loadavg
corpus small "$SMALL_MB"
corpus large "$LARGE_MB"
bench small file
bench large block
rss_scaling
read -r LOAD_END _ </proc/loadavg

version() { "$@" 2>/dev/null | head -n 1 || echo unknown; }
echo
echo "## ops-snapshot benchmark (issue 7)"
echo
echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown CPU); load average $LOAD_START at start, $LOAD_END at end (other work on the machine makes timings noisy)"
declare -A BYTES
for c in small large; do
  BYTES[$c]=$(find "$BENCH_DIR/$c" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  echo "- corpus $c: ${BYTES[$c]} bytes, $(find "$BENCH_DIR/$c" -type f | wc -l) files ($BENCH_DIR/$c); the 1% change: ${CHANGED[$c]:-not made}"
done
echo "- the corpus copy that is snapshotted, the repositories, the tools' caches and the restores all live in a private dir on /dev/shm (tmpfs), not on the disk"
echo "- ours: $(if on ours; then version "$BIN/ops-snapshot" --version; else echo "left out (${OFF[ours]})"; fi)"
echo "- restic: $(if on restic; then version restic version; else echo "left out (${OFF[restic]})"; fi); restic always encrypts (AES-256 + Poly1305): RESTIC_PASSWORD, init --repository-version 2, compression auto (zstd)"
echo "- borg: $(if on borg; then version borg --version; else echo "left out (${OFF[borg]})"; fi); init --encryption=none, create --compression zstd,3 (unencrypted, like ours)"
echo "- medians of $RUNS paired runs per tool, order rotating each run; peak RSS is the largest of the runs. Each run: a fresh copy of the corpus, a first snapshot into a fresh repository, a re-snapshot with nothing changed, the 1% change, a snapshot after it; then $RUNS restores of the first snapshot from the last run's repositories (the first restore of each tool is compared with the corpus by diff -r)"
echo "- repository size: du -sb after the first snapshot; growth: du -sb after minus before the snapshot after the change (restic picks a random chunker polynomial per repository, so its growth on large files varies run to run); the tools' caches (restic's, borg's and our chunk index) are outside the repository and not counted"
echo
echo "| corpus | metric | ours | restic (encrypted) | borg (unencrypted) | ours/restic | ours/borg | target | met |"
echo "|---|---|---:|---:|---:|---:|---:|---|---|"
for c in small large; do
  declare -A v=()
  for side in "${SIDES[@]}"; do
    for op in first same changed restore; do
      v[$op.s.$side]=$(col "$c" "$op" "$side" 4 | median)
      v[$op.m.$side]=$(col "$c" "$op" "$side" 5 | max_mib)
    done
    v[repo.$side]=$(scol "$c" repo "$side" | median)
    v[cache.$side]=$(scol "$c" cache "$side" | median)
    v[growth.$side]=$(scol "$c" growth "$side" | median)
    v[rss.$side]=$(mib_all "$c" "$side")
  done
  r3() { row "$c" "$1" "$2" "$3" "${v[$4.ours]:-}" "${v[$4.restic]:-}" "${v[$4.borg]:-}"; }
  r3 "first snapshot, wall s" "%.2f" "r=0.5,b=0.5" first.s
  r3 "first snapshot, peak RSS MiB" "%.1f" "-" first.m
  r3 "re-snapshot, nothing changed, wall s" "%.2f" "r=0.5" same.s
  r3 "re-snapshot, nothing changed, peak RSS MiB" "%.1f" "-" same.m
  r3 "snapshot after 1% changed, wall s" "%.2f" "-" changed.s
  r3 "repository growth after 1% changed, bytes" "%d" "r=1,b=1" growth
  r3 "restore of the first snapshot, wall s" "%.2f" "r=1.0" restore.s
  r3 "restore, peak RSS MiB" "%.1f" "-" restore.m
  r3 "repository size after the first snapshot, bytes" "%d" "b=1.05" repo
  r3 "cache outside the repository, bytes" "%d" "-" cache
  r3 "peak RSS of any step, MiB" "%.1f" "lt=$RSS_LIMIT_MIB" rss
  unset v
done

if on ours || [[ -n $(col "small-$HALF_MB" first ours 5) ]]; then
  half=small-$HALF_MB
  hb=$(find "$BENCH_DIR/$half" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  h=$(col "$half" first ours 5 | max_mib)
  f=$(col small first ours 5 | max_mib)
  echo
  echo "Peak RSS of ours (first snapshot) against the size of the data (target: grows far slower than the data, taken as RSS growth ≤ 1/4 of the data growth):"
  echo
  echo "| corpus | bytes | ours peak RSS MiB |"
  echo "|---|---:|---:|"
  echo "| $half | $hb | ${h:-—} |"
  echo "| small | ${BYTES[small]} | ${f:-—} |"
  echo
  awk -v h="$h" -v f="$f" -v hb="$hb" -v fb="${BYTES[small]}" 'BEGIN {
    if (h == "" || f == "" || h + 0 == 0 || hb + 0 == 0) { print "RSS growth: n/a"; exit }
    d = fb / hb; g = f / h
    printf "data ×%.2f, RSS ×%.2f: %s\n", d, g, (g - 1 <= (d - 1) / 4) ? "met" : "**not met**"
  }'
fi

if ((${#NOTES[@]})); then
  echo
  echo "Notes:"
  for n in "${NOTES[@]}"; do echo "- $n"; done
fi
