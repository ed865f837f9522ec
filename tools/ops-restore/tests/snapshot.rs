//! ops-restore with `snapshot` records on stdin (`ops-snapshot list --repo R
//! | tail -n 1 | ops-restore --to DIR`), against repositories made by the
//! real ops-snapshot.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ops_tests::{assert_same_tree, backed_up_sample, names, ops, sample_tree};
use serde_json::Value;
use tempfile::{tempdir, TempDir};

/// The sample tree snapshotted once: the temporary directory, the tree,
/// the repository and the snapshot record.
fn snapshotted_sample() -> (TempDir, PathBuf, PathBuf, Value) {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let repo = tmp.path().join("repo");
    let record = ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .run()
        .success()
        .record();
    (tmp, data, repo, record)
}

fn restore(record: &Value, to: &Path, extra: &[&str]) -> ops_tests::Outcome {
    ops("ops-restore")
        .arg("--to")
        .arg(to)
        .args(extra)
        .stdin(format!("{record}\n"))
        .run()
}

#[test]
fn help_and_bad_arguments() {
    let help = ops("ops-restore").arg("--help").run().success();
    help.stdout_contains("snapshot")
        .stdout_contains("--lock-wait");
    ops("ops-restore")
        .args(["--to", "x", "--lock-wait", "soon"])
        .stdin("")
        .run()
        .fails_with(2);
}

#[test]
fn a_snapshot_record_on_stdin_restores_byte_identical() {
    let (tmp, data, repo, _) = snapshotted_sample();
    let listed = ops("ops-snapshot")
        .arg("list")
        .arg("--repo")
        .arg(&repo)
        .run()
        .success();
    let note = r#"{"type":"note","v":1,"text":"passes"}"#;
    let target = tmp.path().join("restored");
    let out = ops("ops-restore")
        .arg("--to")
        .arg(&target)
        .stdin(format!("{note}\n{}", listed.stdout))
        .run()
        .success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(lines[0], note);
    let restored: Value = serde_json::from_str(lines[1]).unwrap();
    let listed = listed.record();
    assert_eq!(restored["type"], "snapshot");
    assert_eq!(restored["id"], listed["id"]);
    assert_eq!(restored["host"], listed["host"]);
    assert_eq!(restored["restore"]["ok"], true);
    assert_eq!(restored["restore"]["to"], target.to_str().unwrap());
    assert_eq!(restored["restore"]["bytes"], listed["bytes"]);
    assert_same_tree(&data, &target);
    assert!(target.join(OsStr::from_bytes(b"caf\xe9.txt")).exists());
    assert_eq!(
        fs::read_link(target.join("link")).unwrap(),
        Path::new("hello.txt")
    );
}

#[test]
fn a_non_empty_target_is_refused_without_force() {
    let (tmp, data, _repo, record) = snapshotted_sample();
    let target = tmp.path().join("restored");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("stale.txt"), "old\n").unwrap();
    let out = restore(&record, &target, &[]).fails_with(1);
    out.stderr_contains("not empty").stderr_contains("--force");
    assert!(out.stdout.is_empty());
    assert_eq!(names(&target), ["stale.txt"]);
    restore(&record, &target, &["--force"]).success();
    assert_same_tree(&data, &target);
}

#[test]
fn one_record_at_a_time() {
    let (tmp, _data, _repo, snapshot) = snapshotted_sample();
    let (_backup_tmp, _backup_data, backup) = backed_up_sample();
    let target = tmp.path().join("restored");
    for (input, said) in [
        (format!("{snapshot}\n{snapshot}\n"), "2 snapshot records"),
        (
            format!("{backup}\n{snapshot}\n"),
            "2 backup and snapshot records",
        ),
    ] {
        let out = ops("ops-restore")
            .arg("--to")
            .arg(&target)
            .stdin(input)
            .run()
            .fails_with(2);
        out.stderr_contains(said).stderr_contains("one at a time");
        assert!(!target.exists());
    }
}

#[test]
fn a_snapshot_that_is_not_there_is_an_input_error() {
    let (tmp, _data, repo, record) = snapshotted_sample();
    let target = tmp.path().join("restored");

    let mut forgotten = record.clone();
    forgotten["id"] = "0".repeat(64).into();
    let out = restore(&forgotten, &target, &[]).fails_with(2);
    out.stderr_contains("no snapshot");

    let mut moved = record.clone();
    moved["repo"] = tmp.path().join("moved").to_str().unwrap().into();
    let out = restore(&moved, &target, &[]).fails_with(2);
    out.stderr_contains("not an ops-snapshot repository");

    let out = restore(&record, Path::new("postgres://u@localhost/db"), &[]).fails_with(2);
    out.stderr_contains("not a database");
    assert!(!target.exists());
    assert!(repo.join("config").exists());
}

#[test]
fn a_damaged_snapshot_fails_and_leaves_the_target_as_it_was() {
    let (tmp, _data, repo, record) = snapshotted_sample();
    // Every pack damaged in its chunk data.
    for dir in fs::read_dir(repo.join("packs")).unwrap() {
        for pack in fs::read_dir(dir.unwrap().path()).unwrap() {
            let pack = pack.unwrap().path();
            let mut bytes = fs::read(&pack).unwrap();
            bytes[0] ^= 0xff;
            fs::write(&pack, bytes).unwrap();
        }
    }
    let target = tmp.path().join("restored");
    let out = restore(&record, &target, &[]).fails_with(1);
    out.stderr_contains("ops-restore: error:");
    assert!(!target.exists());
}

#[test]
fn a_sparse_file_comes_back_from_a_snapshot_with_its_holes() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    let image = fs::File::create(data.join("disk.img")).unwrap();
    image.set_len(64 << 20).unwrap();
    image.write_all_at(&[7u8; 8192], 32 << 20).unwrap();
    if image.metadata().unwrap().blocks() * 512 >= 1 << 20 {
        eprintln!("skipped: {} cannot hold holes", data.display());
        return;
    }
    let repo = tmp.path().join("repo");
    let record = ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .run()
        .success()
        .record();
    let target = tmp.path().join("restored");
    restore(&record, &target, &[]).success();
    assert_same_tree(&data, &target);
    let allocated = fs::metadata(target.join("disk.img")).unwrap().blocks() * 512;
    assert!(
        allocated < 1 << 20,
        "holes filled: {allocated} bytes allocated"
    );
}
