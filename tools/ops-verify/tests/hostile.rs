//! ops-verify against forged records and damaged side files: a record must
//! not choose where a verification result is written, and "verified" must
//! mean `sha256sum -c` passes too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ops_tests::{backed_up_sample, names, ops};
use serde_json::{json, Value};
use tempfile::tempdir;

fn artifact(record: &Value) -> PathBuf {
    PathBuf::from(record["path"].as_str().unwrap())
}

fn sha256sum_c(dir: &Path, sidecar: &Path) -> bool {
    Command::new("sha256sum")
        .arg("-c")
        .arg(sidecar)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_forged_id_cannot_write_an_intact_mirror_s_result_beside_a_corrupt_backup() {
    let (tmp, _data, record) = backed_up_sample();
    let main = artifact(&record).parent().unwrap().to_owned();
    let mirror = tmp.path().join("mirror");
    fs::create_dir(&mirror).unwrap();
    for name in names(&main) {
        fs::copy(main.join(&name), mirror.join(&name)).unwrap();
    }
    let id = record["id"].as_str().unwrap();
    let corrupt = artifact(&record);
    let mut bytes = fs::read(&corrupt).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(&corrupt, bytes).unwrap();
    let mut forged = record.clone();
    forged["id"] = Value::from(format!("../backups/{id}"));
    forged["path"] = Value::from(mirror.join(corrupt.file_name().unwrap()).to_str().unwrap());
    let out = ops("ops-verify")
        .stdin(format!("{forged}\n"))
        .run()
        .fails_with(2);
    out.stderr_contains("not a backup id");
    assert!(!main.join(format!("{id}.verify.json")).exists());
    let listed = ops("ops-backup").arg("list").arg(&main).run().record();
    assert!(listed.get("verify").is_none(), "{listed}");
}

#[test]
fn a_record_pointing_where_no_backup_is_writes_nothing_there() {
    let tmp = tempdir().unwrap();
    let elsewhere = tmp.path().join("etc");
    fs::create_dir(&elsewhere).unwrap();
    let record = json!({"type": "backup", "v": 1, "id": "db_20261101_000000",
        "name": "db", "time": "2026-11-01T00:00:00Z",
        "path": elsewhere.join("db_20261101_000000.tar.zst"),
        "source": {"kind": "dir", "location": "/srv/db"}, "format": "tar.zst",
        "mode": "full", "parent": null, "bytes": 1, "sha256": "0".repeat(64)});
    ops("ops-verify")
        .stdin(format!("{record}\n"))
        .run()
        .fails_with(1);
    assert!(names(&elsewhere).is_empty(), "{:?}", names(&elsewhere));
    let mut renamed = record.clone();
    renamed["path"] = Value::from(elsewhere.join("passwd").to_str().unwrap());
    let out = ops("ops-verify")
        .stdin(format!("{renamed}\n"))
        .run()
        .fails_with(2);
    out.stderr_contains("not its artifact");
    assert!(names(&elsewhere).is_empty());
}

#[test]
fn a_bad_record_after_good_ones_stops_before_anything_is_verified() {
    let (_tmp, _data, record) = backed_up_sample();
    let mut bad = record.clone();
    bad["id"] = Value::from("../x");
    ops("ops-verify")
        .stdin(format!("{record}\n{bad}\n"))
        .run()
        .fails_with(2);
    let dir = artifact(&record).parent().unwrap().to_owned();
    assert!(
        !names(&dir).iter().any(|n| n.ends_with(".verify.json")),
        "{:?}",
        names(&dir)
    );
}

#[test]
fn a_corrupted_checksum_file_fails_verification_as_sha256sum_does() {
    let (_tmp, _data, record) = backed_up_sample();
    let path = artifact(&record);
    let dir = path.parent().unwrap().to_owned();
    let sidecar = PathBuf::from(format!("{}.sha256", path.display()));
    ops("ops-verify").arg(&path).run().success();
    assert!(sha256sum_c(&dir, &sidecar));
    let good = fs::read_to_string(&sidecar).unwrap();
    let damaged = good.replacen(".tar.zst", ".tar.zsx", 1);
    fs::write(&sidecar, &damaged).unwrap();
    assert!(!sha256sum_c(&dir, &sidecar));
    let out = ops("ops-verify").arg(&path).run().fails_with(1);
    let errors = out.record()["verify"]["errors"].to_string();
    assert!(errors.contains("checksum file"), "{errors}");
    fs::remove_file(&sidecar).unwrap();
    let out = ops("ops-verify").arg(&path).run().fails_with(1);
    assert!(out.record()["verify"]["errors"]
        .to_string()
        .contains("checksum file"));
    fs::write(&sidecar, &good).unwrap();
    ops("ops-verify").arg(&path).run().success();
}

#[test]
fn a_planted_manifest_in_a_directory_is_reported_and_fails_the_run() {
    let (_tmp, _data, record) = backed_up_sample();
    let dir = artifact(&record).parent().unwrap().to_owned();
    let header = json!({"type": "manifest", "v": 1, "id": "../../x_20261101_000000",
        "name": "x", "time": "2026-11-01T00:00:00Z", "artifact": "../../x",
        "format": "tar.zst", "mode": "full", "parent": null,
        "source": {"kind": "dir", "location": "/x"}, "tool": "ops-backup 0.1.0",
        "zstd_level": 3});
    let summary = json!({"type": "summary", "entries": 0, "raw_bytes": 0, "bytes": 1,
        "sha256": "0".repeat(64), "changed": 0, "skipped": 0});
    fs::write(
        dir.join("x_20261101_000000.manifest.jsonl"),
        format!("{header}\n{summary}\n"),
    )
    .unwrap();
    let out = ops("ops-verify").arg(&dir).run().fails_with(1);
    out.stderr_contains("refused");
    assert_eq!(out.records().len(), 1, "the real backup is still verified");
}

#[test]
fn a_result_root_writes_in_another_users_backup_directory_is_theirs_like_the_manifest() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !ops_tests::is_root() {
        eprintln!("skipped: needs root to own files as another user");
        return;
    }
    let (_tmp, _data, record) = backed_up_sample();
    let artifact = artifact(&record);
    let dir = artifact.parent().unwrap();
    for name in names(dir) {
        std::os::unix::fs::chown(dir.join(name), Some(1234), Some(2345)).unwrap();
    }
    let manifest = dir.join(format!("{}.manifest.jsonl", record["id"].as_str().unwrap()));
    fs::set_permissions(&manifest, fs::Permissions::from_mode(0o640)).unwrap();
    ops("ops-verify").arg(&artifact).run().success();
    let result = dir.join(format!("{}.verify.json", record["id"].as_str().unwrap()));
    let meta = fs::metadata(&result).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 2345));
    assert_eq!(meta.mode() & 0o777, 0o640);
}
