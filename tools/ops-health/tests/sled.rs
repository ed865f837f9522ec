//! ops-health --sled: ok with numbers, in use reported but not critical,
//! missing or damaged databases critical; monitoring-plugins exit codes.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;

use ops_tests::ops;
use ops_tests::sled_db::{churned_db, give_to_application, ownership, LockHolder};
use tempfile::tempdir;

#[test]
fn help_and_bad_arguments_exit_unknown() {
    assert!(ops("ops-health")
        .arg("--help")
        .run()
        .success()
        .stdout
        .contains("--sled"));
    ops("ops-health").run().fails_with(3);
    ops("ops-health").arg("--bogus").run().fails_with(3);
}

#[test]
fn a_healthy_database_reports_its_numbers() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    churned_db(&db);
    let check = ops("ops-health")
        .arg("--sled")
        .arg(&db)
        .arg("--deep")
        .run()
        .success()
        .record();
    assert_eq!(check["type"], "check");
    assert_eq!(check["check"], "sled");
    assert_eq!(check["status"], "ok");
    assert_eq!(check["metrics"]["trees"], 5.0);
    assert_eq!(check["metrics"]["keys"], 8004.0);
    assert!(check["metrics"]["size_on_disk_bytes"].as_f64().unwrap() > 0.0);
    assert!(check["metrics"]["checksum"].is_number());
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("5 trees, 8004 keys"),
        "{check}"
    );
}

#[test]
fn a_database_in_use_is_reported_with_its_holder_not_as_critical() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    churned_db(&db);
    let holder = LockHolder::hold(&db);
    let check = ops("ops-health")
        .arg("--sled")
        .arg(&db)
        .run()
        .success()
        .record();
    assert_eq!(check["status"], "ok");
    assert_eq!(check["metrics"]["in_use"], 1.0);
    let pid = check["metrics"]["holder_pid"].as_f64().unwrap() as u32;
    assert_eq!(pid, holder.pid(), "{check}");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("in use by another process (pid"),
        "{check}"
    );
}

#[test]
fn missing_foreign_and_damaged_databases_are_critical() {
    let tmp = tempdir().unwrap();
    let out = ops("ops-health")
        .arg("--sled")
        .arg(tmp.path().join("nope"))
        .run()
        .fails_with(2);
    assert!(out.record()["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let out = ops("ops-health")
        .arg("--sled")
        .arg(tmp.path())
        .run()
        .fails_with(2);
    assert!(out.record()["message"]
        .as_str()
        .unwrap()
        .contains("not a sled database"));
    let db = tmp.path().join("db");
    churned_db(&db);
    let file = db.join("db");
    let mut bytes = fs::read(&file).unwrap();
    let len = bytes.len();
    for at in (0..len).step_by(997) {
        bytes[at] ^= 0x55;
    }
    fs::write(&file, bytes).unwrap();
    // Depending on where the damage lands, sled either refuses (panics
    // inside) or silently drops the damaged log; both must be flagged.
    let out = ops("ops-health").arg("--sled").arg(&db).arg("--deep").run();
    let check = out.record();
    let message = check["message"].as_str().unwrap();
    match out.code {
        1 => assert!(
            message.contains("may have discarded damaged data"),
            "{check}"
        ),
        2 => assert!(message.contains("is it damaged?"), "{check}"),
        _ => panic!("damage not flagged: {out:?}"),
    }

    let other = tmp.path().join("other");
    churned_db(&other);
    let conf = other.join("conf");
    let mut bytes = fs::read(&conf).unwrap();
    bytes[14] ^= 0x01;
    fs::write(&conf, bytes).unwrap();
    let out = ops("ops-health")
        .arg("--sled")
        .arg(&other)
        .run()
        .fails_with(2);
    assert_eq!(out.record()["status"], "crit");
}

#[test]
fn a_check_as_root_leaves_the_database_owned_by_the_application() {
    if !ops_tests::is_root() {
        eprintln!("skipped: giving a database to another user needs root");
        return;
    }
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    churned_db(&db);
    let before = give_to_application(&db);
    let check = ops("ops-health")
        .arg("--deep")
        .arg("--sled")
        .arg(&db)
        .run()
        .success()
        .record();
    assert_eq!(check["status"], "ok", "{check}");
    assert_eq!(ownership(&db), before, "owners and modes after a check");
}
