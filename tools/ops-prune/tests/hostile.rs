//! ops-prune against hostile content: manifests planted in a backup
//! directory and records forged on stdin must not steer a deletion out of
//! the place named on the command line, nor create files outside it.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;

use ops_tests::{dated_backups, names, ops};
use serde_json::{json, Value};
use tempfile::tempdir;

fn list(dir: &Path) -> Vec<Value> {
    ops("ops-backup").arg("list").arg(dir).run().records()
}

/// A manifest file `<file_id>.manifest.jsonl` with header and summary only,
/// as a user who can write the directory could plant it.
fn plant(dir: &Path, file_id: &str, id: &str, artifact: &str, time: &str, bytes: u64) {
    let header = json!({"type": "manifest", "v": 1, "id": id, "name": "db", "time": time,
        "artifact": artifact, "format": "tar.zst", "mode": "full", "parent": null,
        "source": {"kind": "dir", "location": "/srv/db"}, "tool": "ops-backup 0.1.0",
        "zstd_level": 3});
    let summary = json!({"type": "summary", "entries": 0, "raw_bytes": 0, "bytes": bytes,
        "sha256": "0".repeat(64), "changed": 0, "skipped": 0});
    fs::write(
        dir.join(format!("{file_id}.manifest.jsonl")),
        format!("{header}\n{summary}\n"),
    )
    .unwrap();
}

#[test]
fn planted_manifests_cannot_make_prune_delete_outside_its_directory() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &["2026-11-22T03:00:00Z"]);
    let victim = tmp.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("secret"), "root:x:0:0\n").unwrap();
    fs::write(victim.join("other"), "other\n").unwrap();
    // Two manifests put the victim's files in a series of their own, where
    // the older goes; its climbing id names the third manifest, which
    // agrees with it and names the victim as its artifact.
    plant(
        &backups,
        "db_20261101_000000",
        "../backups/db_20261102_000000",
        "../victim/secret",
        "2026-11-01T00:00:00Z",
        11,
    );
    plant(
        &backups,
        "db_20261103_000000",
        "db_20261103_000000",
        "../victim/other",
        "2026-11-03T00:00:00Z",
        6,
    );
    plant(
        &backups,
        "db_20261102_000000",
        "db_20261102_000000",
        "secret",
        "2026-11-01T00:00:00Z",
        11,
    );
    let before = names(&backups);
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .arg(&backups)
        .run()
        .fails_with(2);
    out.stderr_contains("refused");
    out.stderr_contains("deleted nothing");
    assert!(victim.join("secret").exists(), "deleted outside: {out:?}");
    assert_eq!(names(&backups), before, "nothing deleted inside either");
}

#[test]
fn a_record_whose_id_climbs_into_another_directory_deletes_nothing() {
    let tmp = tempdir().unwrap();
    let (mine, other) = (tmp.path().join("mine"), tmp.path().join("other"));
    dated_backups(
        &mine,
        "db",
        &["2026-11-20T03:00:00Z", "2026-11-22T03:00:00Z"],
    );
    let only = dated_backups(&other, "db", &["2026-11-21T03:00:00Z"]).remove(0);
    let mut forged = list(&other).remove(0);
    let artifact = format!("{only}.tar.zst");
    fs::copy(other.join(&artifact), mine.join(&artifact)).unwrap();
    forged["id"] = Value::from(format!("../other/{only}"));
    forged["path"] = Value::from(mine.join(&artifact).to_str().unwrap());
    let input: String = list(&mine)
        .iter()
        .chain([&forged])
        .map(|r| format!("{r}\n"))
        .collect();
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .stdin(input)
        .run()
        .fails_with(2);
    out.stderr_contains("input line 3");
    out.stderr_contains("not a backup id");
    assert!(
        other.join(format!("{only}.manifest.jsonl")).exists(),
        "the other directory's only backup lost its manifest: {out:?}"
    );
    assert_eq!(list(&mine).len(), 2);
}

#[test]
fn a_bogus_record_creates_no_lock_file_where_it_points() {
    let tmp = tempdir().unwrap();
    let elsewhere = tmp.path().join("etc");
    fs::create_dir(&elsewhere).unwrap();
    let record = json!({"type": "backup", "v": 1, "id": "db_20261101_000000",
        "name": "db", "time": "2026-11-01T00:00:00Z",
        "path": elsewhere.join("db_20261101_000000.tar.zst"),
        "source": {"kind": "dir", "location": "/srv/db"}, "format": "tar.zst",
        "mode": "full", "parent": null, "bytes": 1, "sha256": "0".repeat(64)});
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .stdin(format!("{record}\n"))
        .run()
        .fails_with(2);
    out.stderr_contains("input line 1");
    assert!(
        !elsewhere.join(".ops-lock").exists(),
        "a lock file was created where a bogus record points"
    );
    assert!(names(&elsewhere).is_empty());
}

#[test]
fn a_record_whose_path_is_not_its_artifact_is_refused() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(
        &backups,
        "db",
        &["2026-11-20T03:00:00Z", "2026-11-22T03:00:00Z"],
    );
    let mut records = list(&backups);
    records[0]["path"] = Value::from(backups.join("important.txt").to_str().unwrap());
    fs::write(backups.join("important.txt"), "keep me\n").unwrap();
    let input: String = records.iter().map(|r| format!("{r}\n")).collect();
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .stdin(input)
        .run()
        .fails_with(2);
    out.stderr_contains("not its artifact");
    assert!(backups.join("important.txt").exists());
    assert_eq!(list(&backups).len(), 2);
}
