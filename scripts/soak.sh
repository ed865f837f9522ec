#!/usr/bin/env bash
# Soak: the crash and race loops of the tests (each about 20 kills or pairs
# per run) run REPEAT times over, so a fault that shows once in hundreds of
# kills has its chance. `make soak`; REPEAT=10 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${REPEAT:-10}

loops=(
  "ops-backup create two_first_backups_into_a_new_directory_both_succeed"
  "ops-compact files kill_9_anywhere_loses_nothing_and_the_next_run_finishes"
  "ops-snapshot init two_first_creates_at_once_both_succeed_into_one_repository"
  "ops-snapshot init a_first_create_killed_at_any_moment_leaves_a_repository_the_next_create_uses"
  "ops-snapshot index creates_killed_while_the_index_opens_never_leave_an_index_that_fails_later_runs"
  "ops-snapshot crash"
  "ops-snapshot churn files_deleted_or_replaced_during_create_are_warnings_and_the_snapshot_is_recorded"
)

cargo build -q --workspace --bins
failed=0
for entry in "${loops[@]}"; do
  read -r crate file filter <<<"$entry"
  passed=0
  for ((i = 1; i <= repeat; i++)); do
    if cargo test -q -p "$crate" --test "$file" -- ${filter:+"$filter"} >/dev/null 2>&1; then
      passed=$((passed + 1))
    fi
  done
  printf '%-60s %d/%d runs passed\n' "$crate $file ${filter:-(all)}" "$passed" "$repeat"
  ((passed == repeat)) || failed=1
done
exit "$failed"
