//! The pipelines of the README, run through a real shell, and interop with
//! the standard tools: GNU tar, zstd and sha256sum.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;

use ops_tests::{assert_same_tree, sample_tree, sh};
use tempfile::tempdir;

#[test]
fn backup_then_verify_in_one_pipeline() {
    let tmp = tempdir().unwrap();
    sample_tree(&tmp.path().join("data"));
    let out = sh("ops-backup create ./data --to backups | ops-verify")
        .current_dir(tmp.path())
        .run()
        .success();
    let record = out.record();
    assert_eq!(record["verify"]["ok"], true);
    assert_eq!(record["verify"]["level"], "full");
    let listed = sh("ops-backup list backups | ops-verify")
        .current_dir(tmp.path())
        .run()
        .success()
        .record();
    assert_eq!(listed["id"], record["id"]);
}

#[test]
fn the_newest_listed_backup_restores_from_a_record_on_stdin() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    sh("ops-backup create ./data --to backups >/dev/null && sleep 1 && echo changed > data/new.txt && ops-backup create ./data --to backups >/dev/null")
        .current_dir(tmp.path())
        .run()
        .success();
    let out = sh("ops-backup list backups | tail -n 1 | ops-restore --to restored")
        .current_dir(tmp.path())
        .run()
        .success();
    assert_eq!(out.record()["restore"]["ok"], true);
    assert_same_tree(&data, &tmp.path().join("restored"));
}

#[test]
fn gnu_tar_extracts_our_artifact_to_identical_files() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    sh("ops-backup create ./data --to backups >/dev/null && mkdir plain && tar --zstd -xf backups/data_*.tar.zst -C plain")
        .current_dir(tmp.path())
        .run()
        .success();
    assert_same_tree(&data, &tmp.path().join("plain"));
}

#[test]
fn incompressible_content_is_stored_in_raw_frames_that_standard_tools_read() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    fs::write(
        data.join("noise-a.bin"),
        ops_tests::pseudo_random(5 << 20, 11),
    )
    .unwrap();
    fs::write(
        data.join("zz-text.log"),
        "a log line of a service\n".repeat(200_000),
    )
    .unwrap();
    let out = sh("ops-backup create ./data --to backups >/dev/null && zstd -l backups/*.tar.zst && mkdir plain && tar --zstd -xf backups/data_*.tar.zst -C plain")
        .current_dir(tmp.path())
        .run()
        .success();
    // Text, then stored noise, then text again: more than one frame.
    let frames: u64 = out
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(frames >= 3, "{}", out.stdout);
    assert_same_tree(&data, &tmp.path().join("plain"));
    sh("ops-verify backups")
        .current_dir(tmp.path())
        .run()
        .success();
}

#[test]
fn sha256sum_and_zstd_check_our_artifact() {
    let tmp = tempdir().unwrap();
    sample_tree(&tmp.path().join("data"));
    let out = sh("ops-backup create ./data --to backups >/dev/null && cd backups && sha256sum -c ./*.sha256 && zstd -tq ./*.tar.zst")
        .current_dir(tmp.path())
        .run()
        .success();
    out.stdout_contains(".tar.zst: OK");
    let from_record = sh(r#"ops-backup list backups | sed -E 's/.*"path":"([^"]*)".*"sha256":"([0-9a-f]{64})".*/\2  \1/' | sha256sum -c"#)
        .current_dir(tmp.path())
        .run()
        .success();
    from_record.stdout_contains(": OK");
    let artifact = fs::read_dir(tmp.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .unwrap();
    let mut bytes = fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&artifact, bytes).unwrap();
    sh("cd backups && sha256sum -c --quiet ./*.sha256")
        .current_dir(tmp.path())
        .run()
        .fails_with(1);
}

#[test]
fn a_closed_stdout_is_a_quiet_success() {
    let tmp = tempdir().unwrap();
    for i in 0..3 {
        fs::write(tmp.path().join(format!("f{i}")), "x").unwrap();
        sh(&format!("ops-backup create f{i} --to backups >/dev/null"))
            .current_dir(tmp.path())
            .run()
            .success();
    }
    let out = sh(
        "ops-backup list backups | head -n 1 && ops-backup list backups | ops-verify | head -n 1",
    )
    .current_dir(tmp.path())
    .run()
    .success();
    assert_eq!(out.stdout.lines().count(), 2);
    out.stderr_lacks("error");
}
