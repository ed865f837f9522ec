#!/usr/bin/env bash
# The five-minute tour, on throwaway data and no server: back up a
# directory and a sled database, verify them, list the catalog, prune,
# restore, show that standard tools read our artifacts, check health,
# compact a sled database and compress old logs.
set -euo pipefail

bin=${OPS_BIN:-target/release}
PATH="$(cd "$bin" && pwd):$PATH"
make_sled_db="$(cd "$bin" && pwd)/make-sled-db"
work=$(mktemp -d "${TMPDIR:-/tmp}/ops-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OPS_CACHE_DIR="$work/cache" # the snapshot index of the demo goes with it
cd "$work"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; eval "$*"; }

mkdir -p data/uploads/2026 data/raw data/empty
for i in $(seq 1 200); do
  printf '{"id":%d,"title":"post %d","body":"%s"}\n' "$i" "$i" "$(head -c 300 /dev/urandom | base64 -w0)" >> data/raw/posts.jsonl
done
head -c 2000000 /dev/urandom > data/uploads/2026/photo.jpg
echo "hello" > data/README
ln -s README data/readme-link

run "ops-backup create ./data --to backups --human"
sleep 1
echo "one more line" >> data/README
run "ops-backup create ./data --to backups | ops-verify --human"
run "ops-backup list backups --human"
run "ops-backup list backups | ops-verify | grep -c '\"ok\":true'"
run "ops-backup list backups | tail -n 1 | ops-restore --to restored --human"
run "diff -r data restored && echo 'restored tree is identical'"
run "cd backups && sha256sum -c ./*.sha256 && cd .."
run "mkdir plain && tar --zstd -xf \"\$(find backups -name '*.tar.zst' | sort | head -n 1)\" -C plain && ls plain"
sleep 1
run "ops-backup create ./data --to backups | ops-verify | ops-prune --keep-last 2 backups --human"
run "ops-prune --keep-within 1h --dry-run backups --human"
step "flip one byte of the newest artifact and verify again"
newest=$(find backups -name '*.tar.zst' | sort | tail -n 1)
printf '\001' | dd of="$newest" bs=1 seek=5000 conv=notrunc status=none
ops-verify "$newest" --human || echo "(ops-verify exited $?: the damage was caught)"
step "ops-backup list backups | ops-prune --keep-last 1 --human"
ops-backup list backups | ops-prune --keep-last 1 --human ||
  echo "(ops-prune exited $?: a failed verification stops pruning of that series)"

step "encrypted backups: this host holds only the public key"
run "ops-backup keygen --output backup.key > recipients.txt"
run "ops-backup create ./data --to sealed --recipients-file recipients.txt | ops-verify --human"
run "ops-backup list sealed | ops-verify --identity backup.key --human"
if command -v age >/dev/null; then
  run "mkdir by-age && age -d -i backup.key \"\$(find sealed -name '*.tar.zst.age')\" | tar --zstd -x -C by-age && diff -r data by-age && echo 'the age CLI restored it'"
else
  step "(with the age CLI installed, age -d -i backup.key FILE | tar --zstd -x restores it)"
fi

step "deduplicated snapshots: the second one reads only what changed"
run "ops-snapshot create ./data --repo snaps --human"
echo "a new line" >> data/README
run "ops-snapshot create ./data --repo snaps --json | grep -oE '\"(files|files_read|added_bytes)\":[0-9]+'"
first=$(ops-snapshot list --repo snaps --json | head -n 1 | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')
run "ops-snapshot diff ${first:0:8} latest --repo snaps --human"
run "ops-snapshot list --repo snaps | ops-verify --read-data --human"
run "ops-snapshot restore latest --repo snaps --to snap-restored --human && diff -r data snap-restored && echo 'identical'"
run "ops-snapshot list --repo snaps | ops-prune --keep-last 1 --human"
run "ops-snapshot gc --repo snaps --human"

step "an encrypted snapshot repository: the key from OPS_PASSWORD_FILE, nothing readable without it"
(umask 077 && printf 'demo passphrase\n' >repo.pass)
run "OPS_PASSWORD_FILE=repo.pass ops-snapshot create ./data --repo sealed-snaps --encrypt --human"
run "ops-snapshot key list --repo sealed-snaps --human"
run "ops-verify --repo sealed-snaps --read-data --human"
run "OPS_PASSWORD_FILE=repo.pass ops-snapshot restore latest --repo sealed-snaps --to sealed-restored --human && diff -r data sealed-restored && echo 'identical'"

step "a sled database, as an application would leave it (with churn)"
"$make_sled_db" app.db 20 2 >/dev/null
run "ops-health --sled app.db --human || true"
run "ops-backup create sled:app.db --to backups | ops-verify --restore-test --human"
run "ops-restore \"\$(find backups -name '*.sled.zst' | head -n 1)\" --to app.db.restored --human"
run "ops-compact sled:app.db --dry-run --human"
run "ops-compact sled:app.db --human"
step "raw logs older than a week, compressed in place (checked before the original goes)"
mkdir -p logs
seq 1 20000 | sed 's/^/{"event":"view","n":/; s/$/}/' >logs/app-2026-10.jsonl
touch -d '30 days ago' logs/app-2026-10.jsonl
echo '{"event":"view","n":0}' >logs/app-today.jsonl
run "ops-compact --files logs --older-than 7d --human"
run "ls -l logs && zstd -dc logs/app-2026-10.jsonl.zst | tail -n 1"
run "ops-backup list backups --human"
step "health of the whole setup: disk, backups (the corrupt one is critical), sled"
ops-health --disk . --path backups/ --backups backups --sled app.db --repo snaps --human ||
  echo "(ops-health exited $?: 2 is critical, in the monitoring-plugins convention)"
run "ops-health --disk . --backups backups --format prometheus | grep -E '^ops_(check_status|backup_newest)' || true"
