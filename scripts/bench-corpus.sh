#!/usr/bin/env bash
# bench-corpus.sh - the generated benchmark corpora, shared by bench.sh and
# bench-snapshot.sh. Source it (it defines gen and corpus and sets nothing
# else) or run it:  scripts/bench-corpus.sh NAME MB [KIND]
#
#   small  many small files: log-uniform 1-40 KiB, ~100 files/MB, 90% text-like
#          (log lines, JSON lines), 10% random bytes, 20 files per dir level
#   large  four large files: 40% log lines, 30% JSON lines, 30% random bytes
#
# The corpus goes to $BENCH_DIR/NAME (BENCH_DIR default /var/tmp/ops-bench) and
# is reused while its marker $BENCH_DIR/.NAME.done matches. Content is
# deterministic (seeded) except the random parts of the large corpus.
# MB = 10^6 bytes.

# gen small|large DIR MB: text-like (log and JSON lines) or random content.
gen() {
  python3 - "$@" <<'PY'
import math, os, random, sys
kind, root, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(1234)
WORDS = ("backup restore verify manifest chunk block disk cache host port "
         "user session token request response status ok failed retry timeout "
         "latency warning error info debug service worker queue").split()
LEVELS = ("INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR")

def text(n, json_lines):
    out, size = [], 0
    while size < n:
        if json_lines:
            line = ('{"ts":%d,"level":"%s","user":%d,"op":"%s","latency_ms":%.3f}\n'
                    % (1700000000 + rng.randrange(10**7), rng.choice(LEVELS),
                       rng.randrange(10**5), rng.choice(WORDS), rng.random() * 500))
        else:
            line = "%s [%s] %s id=%d\n" % (
                rng.randrange(10**9), rng.choice(LEVELS),
                " ".join(rng.choices(WORDS, k=rng.randint(4, 14))), rng.randrange(10**6))
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]

target = mb * 10**6
if kind == "small":
    total, i, lo, hi = 0, 0, math.log(1024), math.log(40 * 1024)
    while total < target:
        size = int(math.exp(rng.uniform(lo, hi)))  # log-uniform 1-40 KiB, mean ~10.5 KiB
        d = os.path.join(root, "d%02d" % (i // 2000), "s%02d" % (i // 100 % 20))
        os.makedirs(d, exist_ok=True)
        r = rng.random()
        if r < 0.1:
            name, data = "blob%06d.bin" % i, rng.randbytes(size)
        else:
            name, data = "f%06d.%s" % (i, "jsonl" if r < 0.5 else "log"), text(size, r < 0.5)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        total += size
        i += 1
else:  # large: text-like parts only; random part is written by the caller
    for name, share, js in (("app.log", 0.4, False), ("events.jsonl", 0.3, True)):
        left = int(target * share)
        with open(os.path.join(root, name), "wb") as f:
            while left > 0:
                chunk = text(min(left, 1 << 20), js)
                f.write(chunk)
                left -= len(chunk)
PY
}

# corpus NAME MB [KIND]: make $BENCH_DIR/NAME (a KIND corpus, small or large;
# default KIND=NAME) unless its marker says it is current.
corpus() {
  local name=$1 mb=$2 kind=${3:-$1} dir marker key
  local bench_dir=${BENCH_DIR:-/var/tmp/ops-bench}
  dir=$bench_dir/$name marker=$bench_dir/.$name.done
  key="v1 $name ${mb}MB"
  [[ $kind == "$name" ]] || key="v1 $kind $name ${mb}MB"
  if [[ -f $marker && $(<"$marker") == "$key" && -d $dir ]]; then
    echo "reusing corpus $dir" >&2; return
  fi
  echo "generating corpus $dir (${mb} MB)..." >&2
  rm -rf "$dir" "$marker"
  mkdir -p "$dir"
  gen "$kind" "$dir" "$mb"
  if [[ $kind == large ]]; then
    local rnd=$((mb * 1000000 * 3 / 10 / 2))
    head -c "$rnd" /dev/urandom >"$dir/random1.bin"
    head -c "$rnd" /dev/urandom >"$dir/random2.bin"
  fi
  echo "$key" >"$marker"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  [[ $# -ge 2 && $# -le 3 ]] || { echo "usage: $0 NAME MB [KIND]" >&2; exit 2; }
  corpus "$@"
  echo "${BENCH_DIR:-/var/tmp/ops-bench}/$1"
fi
