//! ops-verify, as a user runs it: paths, directories, records on stdin,
//! and every kind of damage.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use ops_tests::{backed_up_sample, ops, pseudo_random};
use serde_json::Value;
use tempfile::tempdir;

fn artifact(record: &Value) -> PathBuf {
    PathBuf::from(record["path"].as_str().unwrap())
}

fn manifest(record: &Value) -> PathBuf {
    let path = artifact(record);
    path.with_file_name(format!("{}.manifest.jsonl", record["id"].as_str().unwrap()))
}

#[test]
fn help_and_bad_arguments() {
    let help = ops("ops-verify").arg("--help").run().success();
    help.stdout_contains("--level").stdout_contains("stdin");
    ops("ops-verify")
        .args(["--level", "deep", "x"])
        .run()
        .fails_with(2);
    ops("ops-verify")
        .args(["--json", "--human", "x"])
        .run()
        .fails_with(2);
}

#[test]
fn a_good_backup_verifies_and_the_result_is_kept_for_list() {
    let (_tmp, _data, record) = backed_up_sample();
    let backups = artifact(&record).parent().unwrap().to_owned();
    let out = ops("ops-verify").arg(artifact(&record)).run().success();
    let verified = out.record();
    assert_eq!(verified["verify"]["ok"], true);
    assert_eq!(verified["verify"]["level"], "full");
    assert_eq!(verified["verify"]["errors"], Value::Array(vec![]));
    assert_eq!(verified["sha256"], record["sha256"]);
    let listed = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .success()
        .record();
    assert_eq!(listed["verify"]["ok"], true);
    let by_dir = ops("ops-verify")
        .arg(&backups)
        .arg("--level")
        .arg("quick")
        .run()
        .success()
        .record();
    assert_eq!(by_dir["verify"]["level"], "quick");
}

#[test]
fn records_on_stdin_are_annotated_and_others_pass_through_in_order() {
    let (_tmp, _data, record) = backed_up_sample();
    let note = r#"{"type":"note","v":1,"text":"keep me",  "odd spacing":true}"#;
    let input = format!("{note}\n{record}\n{note}\n");
    let out = ops("ops-verify").stdin(input).run().success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], note);
    assert_eq!(lines[2], note);
    let verified: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(verified["verify"]["ok"], true);
}

#[test]
fn a_malformed_line_is_an_input_error_naming_the_line() {
    let out = ops("ops-verify")
        .stdin("{\"type\":\"note\",\"v\":1}\nnot json\n")
        .run()
        .fails_with(2);
    out.stderr_contains("input line 2");
    let out = ops("ops-verify")
        .stdin("{\"type\":\"backup\",\"v\":1,\"id\":\"x\"}\n")
        .run()
        .fails_with(2);
    out.stderr_contains("input line 1: invalid backup record");
}

#[test]
fn a_record_whose_artifact_is_missing_fails() {
    let (_tmp, _data, record) = backed_up_sample();
    fs::remove_file(artifact(&record)).unwrap();
    let out = ops("ops-verify")
        .stdin(record.to_string())
        .run()
        .fails_with(1);
    let verified = out.record();
    assert_eq!(verified["verify"]["ok"], false);
    assert!(verified["verify"]["errors"][0]
        .as_str()
        .unwrap()
        .contains("is missing"));
    ops("ops-verify")
        .arg("/nonexistent/backup.tar.zst")
        .run()
        .fails_with(1);
}

/// Verifies `path`, requires exit 1, and returns what was reported: the
/// record's errors, or stderr when the manifest is too damaged for a record.
fn verify_fails(path: &Path) -> String {
    let out = ops("ops-verify").arg(path).run();
    assert_eq!(out.code, 1, "damage not detected: {out:?}");
    match out.records().first() {
        Some(record) => {
            assert_eq!(record["verify"]["ok"], false);
            record["verify"]["errors"].to_string()
        }
        None => out.stderr,
    }
}

fn flip(path: &Path, offset: usize) -> Vec<u8> {
    let original = fs::read(path).unwrap();
    let mut damaged = original.clone();
    damaged[offset] ^= 0x01 << (offset % 8);
    fs::write(path, damaged).unwrap();
    original
}

#[test]
fn every_flipped_byte_in_artifact_or_manifest_is_caught() {
    let (_tmp, _data, record) = backed_up_sample();
    for file in [artifact(&record), manifest(&record)] {
        let len = fs::metadata(&file).unwrap().len() as usize;
        let offsets = pseudo_random(48, len as u64)
            .chunks(3)
            .map(|c| (usize::from(c[0]) << 16 | usize::from(c[1]) << 8 | usize::from(c[2])) % len)
            .chain([0, len / 2, len - 1])
            .collect::<Vec<_>>();
        for offset in offsets {
            let original = flip(&file, offset);
            let reported = verify_fails(&artifact(&record));
            assert!(!reported.is_empty(), "{} offset {offset}", file.display());
            fs::write(&file, original).unwrap();
        }
    }
    ops("ops-verify").arg(artifact(&record)).run().success();
}

#[test]
fn truncation_appended_data_and_a_missing_manifest_are_caught() {
    let (_tmp, _data, record) = backed_up_sample();
    let path = artifact(&record);
    let original = fs::read(&path).unwrap();
    fs::write(&path, &original[..original.len() - 100]).unwrap();
    let errors = verify_fails(&path);
    assert!(errors.contains("truncated"), "{errors}");
    let mut longer = original.clone();
    longer.extend_from_slice(b"trailing");
    fs::write(&path, longer).unwrap();
    verify_fails(&path);
    fs::write(&path, &original).unwrap();
    let manifest_text = fs::read_to_string(manifest(&record)).unwrap();
    let mut lines: Vec<&str> = manifest_text.lines().collect();
    lines.pop();
    fs::write(manifest(&record), lines.join("\n") + "\n").unwrap();
    assert!(verify_fails(&path).contains("seal"));
    fs::remove_file(manifest(&record)).unwrap();
    let out = ops("ops-verify")
        .stdin(record.to_string())
        .run()
        .fails_with(1);
    assert!(out.record()["verify"]["errors"]
        .to_string()
        .contains("has no manifest"));
}

#[test]
fn several_artifacts_verify_in_parallel_and_come_out_in_input_order() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let mut input = String::new();
    for i in 0..6 {
        let src = tmp.path().join(format!("s{i}"));
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), pseudo_random(200_000, i)).unwrap();
        let record = ops("ops-backup")
            .arg("create")
            .arg(&src)
            .arg("--to")
            .arg(&backups)
            .run()
            .success()
            .record();
        input.push_str(&format!(
            "{record}\n{{\"type\":\"marker\",\"v\":1,\"after\":{i}}}\n"
        ));
    }
    let out = ops("ops-verify")
        .args(["--jobs", "3"])
        .stdin(input.clone())
        .run()
        .success();
    let expected: Vec<String> = input
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].to_string())
        .collect();
    let got: Vec<String> = out
        .records()
        .iter()
        .map(|r| r["type"].to_string())
        .collect();
    assert_eq!(got, expected);
    for (i, r) in out
        .records()
        .iter()
        .filter(|r| r["type"] == "backup")
        .enumerate()
    {
        assert_eq!(r["name"], format!("s{i}"));
        assert_eq!(r["verify"]["ok"], true);
    }
}

#[test]
fn one_bad_backup_among_good_ones_fails_the_run_but_all_are_reported() {
    let (_tmp, data, record) = backed_up_sample();
    let backups = artifact(&record).parent().unwrap().to_owned();
    ops("ops-backup")
        .arg("create")
        .arg(&data)
        .arg("--to")
        .arg(&backups)
        .run()
        .success();
    flip(&artifact(&record), 5000);
    let out = ops("ops-backup").arg("list").arg(&backups).run().success();
    let verified = ops("ops-verify").stdin(out.stdout).run().fails_with(1);
    let oks: Vec<bool> = verified
        .records()
        .iter()
        .map(|r| r["verify"]["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(oks, [false, true]);
    verified.stderr_contains(record["id"].as_str().unwrap());
}

/// Rewrites the manifest's entry lines with `edit` and seals it again, as
/// a writer of that text would have.
fn reseal_manifest(record: &Value, edit: impl Fn(&str) -> String) {
    use ops_backup::hashing::HashingWriter;
    use std::io::Write;
    let path = manifest(record);
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.pop();
    for line in &mut lines {
        if line.starts_with(r#"{"type":"entry""#) {
            *line = edit(line);
        }
    }
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut hashing = HashingWriter::new(std::io::sink());
    hashing.write_all(body.as_bytes()).unwrap();
    let (_, sha256, _) = hashing.finish();
    fs::write(
        &path,
        format!("{body}{{\"type\":\"seal\",\"sha256\":\"{sha256}\"}}\n"),
    )
    .unwrap();
}

/// `line` without its `,"uid":N,"gid":N` fields.
fn without_owners(line: &str) -> String {
    let start = line.find(r#","uid":"#).unwrap();
    let gid = start + line[start..].find(r#""gid":"#).unwrap();
    let end = gid + line[gid..].find([',', '}']).unwrap();
    format!("{}{}", &line[..start], &line[end..])
}

#[test]
fn an_owner_the_archive_does_not_hold_fails_verification() {
    let (_tmp, _data, record) = backed_up_sample();
    reseal_manifest(&record, |line| {
        let uid = line.find(r#","uid":"#).unwrap();
        let rest = &without_owners(line)[uid..];
        format!("{},\"uid\":4242424,\"gid\":0{rest}", &line[..uid])
    });
    let errors = verify_fails(&artifact(&record));
    assert!(
        errors.contains("owner or group differs from the manifest"),
        "{errors}"
    );
}

#[test]
fn a_manifest_written_before_owners_were_recorded_still_verifies() {
    let (tmp, data, record) = backed_up_sample();
    assert!(fs::read_to_string(manifest(&record))
        .unwrap()
        .contains(r#""uid":"#));
    reseal_manifest(&record, without_owners);
    let entries = fs::read_to_string(manifest(&record)).unwrap();
    assert!(!entries
        .lines()
        .skip(1)
        .any(|line| line.contains(r#""uid":"#)));
    let out = ops("ops-verify").arg(artifact(&record)).run().success();
    assert_eq!(out.record()["verify"]["ok"], true);
    let target = tmp.path().join("restored");
    ops("ops-restore")
        .arg(artifact(&record))
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    ops_tests::assert_same_tree(&data, &target);
}
