//! ops-health --drain: a directory a service should keep empty (Gravix's
//! crash-safe buffer) warns about files left in it longer than
//! --drain-age, with how many and how old; symlinks are not followed.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ops_tests::{ops, Outcome};
use tempfile::tempdir;

fn health(args: &[&str]) -> Outcome {
    ops("ops-health").args(args).run()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn file_aged(path: &Path, minutes: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "{\"event\":1}\n").unwrap();
    let when = SystemTime::now() - Duration::from_secs(minutes * 60);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn help_and_bad_arguments() {
    let help = health(&["--help"]).success().stdout;
    assert!(
        help.contains("--drain <DIR>") && help.contains("--drain-age"),
        "{help}"
    );
    health(&["--drain", "/tmp", "--drain-age", "soon"]).fails_with(3);
}

#[test]
fn files_left_in_a_directory_that_should_drain_warn_with_count_and_age() {
    let tmp = tempdir().unwrap();
    let buffer = tmp.path().join("buffer");
    fs::create_dir(&buffer).unwrap();
    let empty = health(&["--drain", s(&buffer)]).success().record();
    assert_eq!(empty["check"], "drain");
    assert_eq!(empty["status"], "ok");
    assert_eq!(empty["metrics"]["stale_files"], 0.0);

    file_aged(&buffer.join("incoming.jsonl"), 0);
    let fresh = health(&["--drain", s(&buffer), "--drain-age", "10m"])
        .success()
        .record();
    assert_eq!(fresh["metrics"]["files"], 1.0, "{fresh}");

    file_aged(&buffer.join("2026/orphan-1.jsonl"), 120);
    file_aged(&buffer.join("orphan-2.jsonl"), 30);
    // Links are not followed: what they point at is not the buffer's.
    let elsewhere = tmp.path().join("elsewhere");
    file_aged(&elsewhere.join("ancient.jsonl"), 100_000);
    std::os::unix::fs::symlink(&elsewhere, buffer.join("linked-dir")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("ancient.jsonl"), buffer.join("link.jsonl")).unwrap();
    let out = health(&["--drain", s(&buffer), "--drain-age", "10m"]).fails_with(1);
    let left = out.record();
    assert_eq!(left["status"], "warn", "{left}");
    assert_eq!(left["target"], s(&buffer));
    assert_eq!(left["metrics"]["stale_files"], 2.0, "{left}");
    assert_eq!(left["metrics"]["files"], 3.0, "{left}");
    let oldest = left["metrics"]["oldest_age_seconds"].as_f64().unwrap();
    assert!((7200.0..7300.0).contains(&oldest), "{left}");
    let message = left["message"].as_str().unwrap();
    assert!(
        message.contains("2 files") && message.contains("10m") && message.contains("2h"),
        "{message}"
    );

    // The default age is an hour: only the two-hour-old file is left behind.
    let left = health(&["--drain", s(&buffer)]).fails_with(1).record();
    assert_eq!(left["metrics"]["stale_files"], 1.0, "{left}");

    let prom = health(&["--drain", s(&buffer), "--format", "prometheus"])
        .fails_with(1)
        .stdout;
    let line = format!(
        "ops_drain_stale_files{{check=\"drain\",target=\"{}\"}} 1",
        buffer.display()
    );
    assert!(prom.contains(&line), "{prom}");
}

#[test]
fn a_missing_drain_directory_is_critical_and_a_file_is_not_a_directory() {
    let tmp = tempdir().unwrap();
    let missing = tmp.path().join("buffer");
    let out = health(&["--drain", s(&missing)]).fails_with(2).record();
    assert!(
        out["message"].as_str().unwrap().contains("does not exist"),
        "{out}"
    );
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let out = health(&["--drain", s(&file)]).fails_with(2).record();
    assert!(
        out["message"].as_str().unwrap().contains("not a directory"),
        "{out}"
    );
}

/// A big spool is counted as it is read, not listed into memory first.
#[test]
fn a_large_directory_is_counted_within_the_timeout() {
    let tmp = tempdir().unwrap();
    let buffer = tmp.path().join("buffer");
    fs::create_dir(&buffer).unwrap();
    for i in 0..20_000 {
        fs::write(buffer.join(format!("{i}.part")), "").unwrap();
    }
    let out = health(&["--drain", s(&buffer)]).success().record();
    assert_eq!(out["metrics"]["files"], 20_000.0, "{out}");
}
