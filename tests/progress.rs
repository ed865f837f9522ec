//! What a person at a terminal sees on stderr: a progress line while a run
//! works and one summary line at its end; in a pipe or under cron, neither.
//! Tables on a terminal show artifact paths, short snapshot ids, and
//! failures in red unless NO_COLOR is set.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;

use ops_tests::{on_terminal, ops, pseudo_random, sample_tree, sh, terminal_lines};
use tempfile::tempdir;

fn data(root: &Path) {
    sample_tree(root);
    fs::write(root.join("large.bin"), pseudo_random(8 << 20, 3)).unwrap();
}

fn line_starting<'a>(lines: &'a [String], start: &str) -> &'a str {
    lines
        .iter()
        .find(|line| line.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in {lines:#?}"))
}

#[test]
fn a_backup_verify_and_restore_at_a_terminal_show_progress_and_end_with_a_summary() {
    let tmp = tempdir().unwrap();
    data(&tmp.path().join("src"));
    let out = on_terminal("ops-backup create src --to backups")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    line_starting(&lines, "ops-backup: backing up src");
    let summary = line_starting(&lines, "ops-backup: backed up ");
    assert!(summary.contains(": 9 files, "), "{summary}");
    assert!(summary.contains(" into backups/src_"), "{summary}");
    assert!(summary.contains(" s") || summary.contains('m'), "{summary}");

    let out = on_terminal("ops-verify backups")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    line_starting(&lines, "ops-verify: verifying");
    let summary = line_starting(&lines, "ops-verify: verified 1 backup, ");
    assert!(summary.contains(" read in "), "{summary}");

    let out = on_terminal("ops-backup list backups --json | ops-restore --to restored")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    line_starting(&lines, "ops-restore: restoring src_");
    let summary = line_starting(&lines, "ops-restore: restored src_");
    assert!(summary.contains(": 13 entries, "), "{summary}");
    assert!(summary.contains(" to restored in "), "{summary}");
}

#[test]
fn snapshots_and_compaction_at_a_terminal_end_with_a_summary() {
    let tmp = tempdir().unwrap();
    data(&tmp.path().join("src"));
    let out = on_terminal("ops-snapshot create src --repo repo")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    line_starting(&lines, "ops-snapshot: snapshotting src");
    let summary = line_starting(&lines, "ops-snapshot: snapshot ");
    assert!(summary.contains(": 9 files, "), "{summary}");
    assert!(summary.contains(" new) in "), "{summary}");

    let out = on_terminal("ops-snapshot list --repo repo --json | ops-restore --to restored")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    let summary = line_starting(&lines, "ops-restore: restored snapshot ");
    assert!(summary.contains(" entries, "), "{summary}");

    let out = on_terminal("ops-snapshot gc --repo repo")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    line_starting(&lines, "ops-snapshot: collected garbage in ");

    fs::create_dir(tmp.path().join("logs")).unwrap();
    fs::write(tmp.path().join("logs/old.log"), "line\n".repeat(10_000)).unwrap();
    let out = on_terminal("ops-compact --files logs --older-than 0s")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    line_starting(&lines, "ops-compact: compressed 1 files, ");
}

#[test]
fn in_a_pipe_or_under_cron_stderr_stays_silent() {
    let tmp = tempdir().unwrap();
    data(&tmp.path().join("src"));
    let out = sh(
        "ops-backup create src --to backups | ops-verify | ops-restore --to restored \
         && ops-snapshot create src --repo repo >/dev/null",
    )
    .current_dir(tmp.path())
    .run()
    .success();
    assert_eq!(out.stderr, "");
    assert_eq!(out.records().len(), 1);
}

#[test]
fn tables_show_artifact_paths_and_short_snapshot_ids() {
    let tmp = tempdir().unwrap();
    data(&tmp.path().join("src"));
    let record = ops("ops-backup")
        .args(["create", "src", "--to", "backups"])
        .current_dir(tmp.path())
        .run()
        .success()
        .record();
    let snapshot = ops("ops-snapshot")
        .args(["create", "src", "--repo", "repo"])
        .current_dir(tmp.path())
        .run()
        .success()
        .record();
    let out = on_terminal("ops-backup list backups")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    assert!(lines[0].starts_with("ARTIFACT "), "{lines:#?}");
    line_starting(&lines, record["path"].as_str().unwrap());

    let id = snapshot["id"].as_str().unwrap();
    let out = on_terminal("ops-snapshot list --repo repo")
        .current_dir(tmp.path())
        .run()
        .success();
    let lines = terminal_lines(&out.stdout);
    let row = line_starting(&lines, &id[..8]);
    assert!(!row.contains(id), "{row}");
    ops("ops-snapshot")
        .args(["restore", &id[..8], "--repo", "repo", "--to", "again"])
        .current_dir(tmp.path())
        .run()
        .success();
}

#[test]
fn a_failed_verification_is_red_on_a_terminal_unless_no_color_is_set() {
    let tmp = tempdir().unwrap();
    data(&tmp.path().join("src"));
    let record = ops("ops-backup")
        .args(["create", "src", "--to", "backups"])
        .current_dir(tmp.path())
        .run()
        .success()
        .record();
    let artifact = tmp.path().join(record["path"].as_str().unwrap());
    let mut bytes = fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&artifact, bytes).unwrap();

    let red = on_terminal("ops-verify backups")
        .current_dir(tmp.path())
        .run()
        .fails_with(1);
    red.stdout_contains("\x1b[31mFAILED: ");
    let plain = on_terminal("ops-verify backups")
        .current_dir(tmp.path())
        .env("NO_COLOR", "1")
        .run()
        .fails_with(1);
    plain.stdout_contains("FAILED: ");
    plain.stdout_lacks("\x1b[31m");
}
