//! ops-backup, ops-verify and ops-restore with sled databases.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use ops_tests::sled_db::{checksum, churned_db, give_to_application, ownership, LockHolder};
use ops_tests::{names, ops};
use tempfile::tempdir;

/// A churned database backed up once: the temporary directory, the
/// database, the backup directory and the backup record.
fn backed_up_db() -> (tempfile::TempDir, PathBuf, PathBuf, serde_json::Value) {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    churned_db(&db);
    let backups = tmp.path().join("backups");
    let record = ops("ops-backup")
        .arg("create")
        .arg(format!("sled:{}", db.display()))
        .arg("--to")
        .arg(&backups)
        .run()
        .success()
        .record();
    (tmp, db, backups, record)
}

#[test]
fn a_sled_database_backs_up_verifies_and_restores_with_its_checksum() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    let sum = churned_db(&db);
    let backups = tmp.path().join("backups");
    let record = ops("ops-backup")
        .arg("create")
        .arg(format!("sled:{}", db.display()))
        .arg("--to")
        .arg(&backups)
        .run()
        .success()
        .record();
    let id = record["id"].as_str().unwrap();
    assert!(id.starts_with("db_"), "{id}");
    assert_eq!(record["format"], "sled.zst");
    assert_eq!(record["source"]["kind"], "sled");
    let manifest = fs::read_to_string(backups.join(format!("{id}.manifest.jsonl"))).unwrap();
    assert!(
        manifest.contains(&format!("\"content_checksum\":{sum}")),
        "{manifest}"
    );
    assert!(
        manifest.contains(r#""name":"hex:ff0062696e6172792d74726565","kind":"tree","rows":2000"#),
        "{manifest}"
    );
    assert!(
        manifest.contains(r#""name":"blobs","kind":"tree","rows":2003"#),
        "{manifest}"
    );

    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    for level in ["quick", "full"] {
        ops("ops-verify")
            .arg(&artifact)
            .args(["--level", level])
            .run()
            .success();
    }
    let tested = ops("ops-verify")
        .arg(&artifact)
        .arg("--restore-test")
        .run()
        .success()
        .record();
    assert_eq!(tested["verify"]["level"], "restore");

    let restored = tmp.path().join("restored");
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&restored)
        .run()
        .success()
        .record();
    assert_eq!(out["restore"]["ok"], true);
    assert_eq!(checksum(&restored), sum);
    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&restored)
        .run()
        .fails_with(1);
    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&restored)
        .arg("--force")
        .run()
        .success();
    assert_eq!(checksum(&restored), sum);

    let plain = ops("ops-backup")
        .arg("create")
        .arg(&db)
        .arg("--to")
        .arg(&backups)
        .run()
        .success()
        .record();
    assert_eq!(
        plain["format"], "sled.zst",
        "a sled directory is recognised by itself"
    );
}

#[test]
fn a_database_held_by_another_process_is_refused_with_its_pid() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("live");
    churned_db(&db);
    let holder = LockHolder::hold(&db);
    let backups = tmp.path().join("backups");
    let out = ops("ops-backup")
        .arg("create")
        .arg(format!("sled:{}", db.display()))
        .arg("--to")
        .arg(&backups)
        .run()
        .fails_with(1);
    out.stderr_contains(&format!(
        "is in use by another process (pid {})",
        holder.pid()
    ));
    out.stderr_contains("stop the application");
    assert!(names(&backups).is_empty());
}

#[test]
fn damaged_sled_backups_and_non_databases_are_caught() {
    let (tmp, _db, backups, record) = backed_up_db();
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    let original = fs::read(&artifact).unwrap();
    fs::write(&artifact, &original[..original.len() / 2]).unwrap();
    let out = ops("ops-verify")
        .arg(&artifact)
        .run()
        .fails_with(1)
        .record();
    assert!(
        out["verify"]["errors"].to_string().contains("truncated"),
        "{out}"
    );
    let target = tmp.path().join("restored");
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&target)
        .run()
        .fails_with(1);
    out.stderr_contains("nothing was written");
    assert!(!target.exists());
    assert!(!names(tmp.path()).iter().any(|n| n.ends_with(".ops-tmp")));
    let mut flipped = original.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x08;
    fs::write(&artifact, flipped).unwrap();
    ops("ops-verify").arg(&artifact).run().fails_with(1);

    fs::create_dir(tmp.path().join("notdb")).unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(format!("sled:{}", tmp.path().join("notdb").display()))
        .arg("--to")
        .arg(&backups)
        .run()
        .fails_with(1);
    out.stderr_contains("is not a sled database");
}

#[test]
fn a_corrupted_database_or_an_unwritable_target_fails_cleanly() {
    let (tmp, db, _backups, record) = backed_up_db();

    let conf = db.join("conf");
    let mut bytes = fs::read(&conf).unwrap();
    bytes[14] ^= 0x01;
    fs::write(&conf, bytes).unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(format!("sled:{}", db.display()))
        .arg("--to")
        .arg(tmp.path().join("b2"))
        .run()
        .fails_with(1);
    assert!(
        out.stderr.contains("cannot open sled database") || out.stderr.contains("is it damaged?"),
        "{}",
        out.stderr
    );
    assert!(names(&tmp.path().join("b2")).is_empty());

    let locked = tmp.path().join("locked");
    fs::create_dir(&locked).unwrap();
    let target = locked.join("restored");
    let readonly = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&locked)
        .status();
    if !readonly.is_ok_and(|s| s.success()) {
        eprintln!("skipped the unwritable target: mounting a read-only tmpfs needs root");
        return;
    }
    let out = ops("ops-restore")
        .arg(record["path"].as_str().unwrap())
        .arg("--to")
        .arg(&target)
        .run();
    Command::new("umount").arg(&locked).status().unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains("Read-only file system");
    assert!(!target.exists());
}

#[test]
fn a_backup_as_root_leaves_the_database_owned_by_the_application() {
    if !ops_tests::is_root() {
        eprintln!("skipped: giving a database to another user needs root");
        return;
    }
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    let sum = churned_db(&db);
    let before = give_to_application(&db);
    ops("ops-backup")
        .arg("create")
        .arg(format!("sled:{}", db.display()))
        .arg("--to")
        .arg(tmp.path().join("backups"))
        .run()
        .success();
    assert_eq!(ownership(&db), before, "owners and modes after a backup");
    assert_eq!(checksum(&db), sum);
}
