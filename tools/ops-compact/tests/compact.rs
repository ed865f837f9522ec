//! ops-compact on sled databases: space reclaimed, contents identical, and a
//! working database at the path whenever the process dies.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use ops_tests::sled_db::{checksum, churned_db, LockHolder};
use ops_tests::{names, ops};
use tempfile::tempdir;

fn target(db: &Path) -> String {
    format!("sled:{}", db.display())
}

#[test]
fn help_and_bad_arguments() {
    let help = ops("ops-compact").arg("--help").run().success();
    assert!(help.stdout.contains("--min-reclaim") && help.stdout.contains("--keep-old"));
    ops("ops-compact").run().fails_with(2);
    ops("ops-compact")
        .args(["sled:/x", "--min-reclaim", "150%"])
        .run()
        .fails_with(2);
    let out = ops("ops-compact").arg("/etc").run().fails_with(2);
    assert!(out.stderr.contains("not a sled database"), "{}", out.stderr);
}

#[test]
fn a_churned_database_is_rebuilt_reclaiming_most_waste_with_identical_contents() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    let sum = churned_db(&db);
    let plan = ops("ops-compact")
        .arg(target(&db))
        .arg("--dry-run")
        .run()
        .success()
        .record();
    assert_eq!(plan["type"], "compact");
    assert_eq!(plan["action"], "would-rebuild", "{plan}");
    assert_eq!(checksum(&db), sum, "a dry run changes nothing");
    let done = ops("ops-compact").arg(target(&db)).run().success().record();
    assert_eq!(done["action"], "rebuilt", "{done}");
    let before = done["before_bytes"].as_u64().unwrap();
    let after = done["after_bytes"].as_u64().unwrap();
    let live = done["live_bytes"].as_u64().unwrap();
    assert!(
        before - after >= (before - live) / 2,
        "reclaimed {} of {} wasted: {done}",
        before - after,
        before - live
    );
    assert_eq!(done["checksum"], sum);
    assert_eq!(checksum(&db), sum);
    assert_eq!(names(tmp.path()), ["db"], "no copies left beside it");
    let again = ops("ops-compact")
        .arg(target(&db))
        .args(["--min-reclaim", "90%"])
        .run()
        .success()
        .record();
    assert_eq!(again["action"], "skipped", "{again}");
}

#[test]
fn keep_old_keeps_the_previous_copy_beside_it() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    let sum = churned_db(&db);
    ops("ops-compact")
        .arg(target(&db))
        .args(["--force", "--keep-old"])
        .run()
        .success();
    let left = names(tmp.path());
    assert_eq!(left.len(), 2, "{left:?}");
    let old = left.iter().find(|n| n.starts_with("db.old-")).unwrap();
    assert_eq!(checksum(&tmp.path().join(old)), sum);
    assert_eq!(checksum(&db), sum);
}

#[test]
fn a_crash_at_any_step_leaves_a_working_identical_database() {
    for step in ["opened", "rebuilt", "swapped"] {
        let tmp = tempdir().unwrap();
        let db = tmp.path().join("db");
        let sum = churned_db(&db);
        let status = Command::new(ops_tests::bin_dir().join("ops-compact"))
            .arg(target(&db))
            .arg("--force")
            .env("OPS_FAILPOINT", step)
            .output()
            .unwrap()
            .status;
        assert!(!status.success(), "{step}: the failpoint did not stop it");
        assert_eq!(checksum(&db), sum, "after a crash at {step}");
        ops("ops-compact")
            .arg(target(&db))
            .arg("--force")
            .run()
            .success();
        assert_eq!(
            checksum(&db),
            sum,
            "compacting again after a crash at {step}"
        );
        assert_eq!(names(tmp.path()), ["db"], "after a crash at {step}");
    }
}

#[test]
fn a_database_in_use_is_left_alone() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    churned_db(&db);
    let _holder = LockHolder::hold(&db);
    let out = ops("ops-compact").arg(target(&db)).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("in use by another process"),
        "{}",
        out.stderr
    );
}
