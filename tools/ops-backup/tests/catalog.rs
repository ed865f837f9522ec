//! The catalog as every tool reads it: the order of ids (the tenth backup
//! of a second is newer than the ninth) and one source per series.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;

use ops_backup::catalog;
use ops_backup::manifest::{ManifestReader, ManifestWriter};
use ops_tests::{names, ops};
use serde_json::Value;
use tempfile::tempdir;

/// Rewrites a committed backup's manifest header with `edit`, under the id
/// `edit` gives it, keeping it sealed; the artifact and checksum file are
/// copied under the new id.
fn copy_as(dir: &Path, id: &str, edit: impl Fn(&mut ops_backup::manifest::Header)) -> String {
    let manifest = catalog::manifest_path(dir, id);
    let mut reader = ManifestReader::open(&manifest).unwrap();
    let mut header = reader.header.clone();
    edit(&mut header);
    header.artifact = format!("{}.{}", header.id, header.format);
    if header.id != id {
        fs::copy(
            dir.join(&reader.header.artifact),
            dir.join(&header.artifact),
        )
        .unwrap();
    }
    let target = catalog::manifest_path(dir, &header.id);
    let scratch = dir.join("rewritten.manifest.jsonl.tmp");
    let mut writer = ManifestWriter::create(&scratch, &header, None).unwrap();
    while let Some(entry) = reader.next_entry().unwrap() {
        writer.entry(&entry).unwrap();
    }
    let summary = reader.finish().unwrap();
    fs::write(
        catalog::checksum_path(&dir.join(&header.artifact)),
        format!("{}  {}\n", summary.sha256, header.artifact),
    )
    .unwrap();
    for file in writer.finish(&summary).unwrap() {
        file.commit().unwrap();
    }
    fs::rename(&scratch, &target).unwrap();
    header.id
}

fn create(source: &Path, to: &Path, extra: &[&str]) -> ops_tests::Outcome {
    ops("ops-backup")
        .arg("create")
        .arg(source)
        .arg("--to")
        .arg(to)
        .args(extra)
        .run()
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_tenth_backup_of_a_second_is_the_newest_for_list_health_and_prune() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a\n").unwrap();
    let backups = tmp.path().join("backups");
    let first = create(&data, &backups, &[]).success().record();
    let time: jiff::Timestamp = first["time"].as_str().unwrap().parse().unwrap();
    let first = first["id"].as_str().unwrap().to_owned();
    let made: Vec<String> = std::iter::once(first.clone())
        .chain((2..=10).map(|attempt| {
            copy_as(&backups, &first, |h| {
                h.id = catalog::backup_id("data", time, attempt);
            })
        }))
        .collect();
    let listed = ids(&ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .success()
        .records());
    assert_eq!(listed, made, "oldest first, _10 last");
    let health = ops("ops-health")
        .args(["--backups"])
        .arg(&backups)
        .args(["--max-age", "1000w", "--json"])
        .run();
    let check = health.record();
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("newest {} ", made[9])),
        "{check}"
    );
    let pruned = ops("ops-prune")
        .args(["--keep-last", "1", "--dry-run"])
        .arg(&backups)
        .run()
        .success()
        .records();
    let kept: Vec<_> = pruned
        .iter()
        .filter(|r| r["prune"]["action"] == "keep")
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], made[9].as_str());
}

#[test]
fn a_second_source_of_the_same_base_name_is_refused_without_a_name_of_its_own() {
    let tmp = tempdir().unwrap();
    let (a, b) = (tmp.path().join("svcA/data"), tmp.path().join("svcB/data"));
    for dir in [&a, &b] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("x.txt"), dir.to_str().unwrap()).unwrap();
    }
    let backups = tmp.path().join("backups");
    create(&a, &backups, &[]).success();
    create(&a, &backups, &[]).success();
    let before = names(&backups);
    let out = create(&b, &backups, &[]).fails_with(2);
    out.stderr_contains("series data");
    out.stderr_contains("--name svcB-data");
    assert_eq!(names(&backups), before, "nothing written");
    let out = create(&b, &backups, &["--name", "data"]).fails_with(2);
    out.stderr_contains("another source");
    let record = create(&b, &backups, &["--name", "svcB-data"])
        .success()
        .record();
    assert_eq!(record["name"], "svcB-data");
    ops("ops-backup").arg("list").arg(&backups).run().success();
}

#[test]
fn a_series_with_two_sources_is_an_error_for_list_prune_and_health() {
    let tmp = tempdir().unwrap();
    let (a, b) = (tmp.path().join("svcA/data"), tmp.path().join("svcB/data"));
    for dir in [&a, &b] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("x.txt"), dir.to_str().unwrap()).unwrap();
    }
    let backups = tmp.path().join("backups");
    create(&a, &backups, &[]).success();
    // As an older ops-backup made it: svcB/data joined series "data".
    let other = create(&b, &backups, &["--name", "other"])
        .success()
        .record();
    let other_id = other["id"].as_str().unwrap().to_owned();
    copy_as(&backups, &other_id, |h| {
        h.name = "data".into();
        h.time = h
            .time
            .checked_add(jiff::SignedDuration::from_hours(1))
            .unwrap();
        h.id = catalog::backup_id("data", h.time, 1);
    });
    for name in names(&backups).iter().filter(|n| n.starts_with("other_")) {
        fs::remove_file(backups.join(name)).unwrap();
    }
    let before = names(&backups);
    let out = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .fails_with(1);
    out.stderr_contains("holds backups of 2 sources");
    assert_eq!(out.records().len(), 2, "still listed, for restores");
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .arg(&backups)
        .run()
        .fails_with(1);
    out.stderr_contains("2 sources");
    assert_eq!(names(&backups), before, "nothing pruned");
    let out = ops("ops-health")
        .arg("--backups")
        .arg(&backups)
        .args(["--max-age", "1000w", "--json"])
        .run()
        .fails_with(2);
    let check = out.record();
    assert_eq!(check["status"], "crit", "{check}");
    assert!(
        check["message"].as_str().unwrap().contains("2 sources"),
        "{check}"
    );
}

#[test]
fn a_planted_manifest_is_an_error_for_list_and_health_not_a_backup() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a\n").unwrap();
    let backups = tmp.path().join("backups");
    let made = create(&data, &backups, &[]).success().record();
    copy_as(&backups, made["id"].as_str().unwrap(), |h| {
        h.id = "data_20261101_000000".into();
    });
    // Planted: the file name of one backup, the id and artifact of a path out.
    let planted = catalog::manifest_path(&backups, "data_20261101_000000");
    let text = fs::read_to_string(&planted).unwrap();
    let text = text.replacen(
        "\"artifact\":\"data_20261101_000000.tar.zst\"",
        "\"artifact\":\"../../etc/shadow\"",
        1,
    );
    fs::write(&planted, text).unwrap();
    let out = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .fails_with(1);
    out.stderr_contains("refused");
    assert_eq!(ids(&out.records()), [made["id"].as_str().unwrap()]);
    let out = ops("ops-health")
        .arg("--backups")
        .arg(&backups)
        .args(["--max-age", "1000w", "--json"])
        .run()
        .fails_with(2);
    assert!(
        out.records()
            .iter()
            .any(|c| c["status"] == "crit" && c["message"].as_str().unwrap().contains("refused")),
        "{}",
        out.stdout
    );
}

#[test]
fn a_manifest_name_planted_as_a_fifo_or_a_link_to_dev_zero_is_refused_not_read() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a\n").unwrap();
    let backups = tmp.path().join("backups");
    let made = create(&data, &backups, &[]).success().record();
    let fifo = catalog::manifest_path(&backups, "data_20261101_000000");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let zero = catalog::manifest_path(&backups, "data_20261102_000000");
    std::os::unix::fs::symlink("/dev/zero", zero).unwrap();
    let mut child = Command::new(ops_tests::bin_dir().join("ops-backup"))
        .arg("list")
        .arg(&backups)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("ops-backup list is stuck reading a planted manifest");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("not a regular file").count(), 2, "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains(made["id"].as_str().unwrap()), "{stdout}");
}

#[test]
fn list_of_an_empty_or_foreign_directory_says_so_and_fails() {
    let tmp = tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = ops("ops-backup")
        .arg("list")
        .arg(&empty)
        .run()
        .fails_with(1);
    assert!(
        out.stderr
            .contains("is empty: no backup has been made there"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");

    let foreign = tmp.path().join("photos");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("cat.jpg"), "jpeg").unwrap();
    let out = ops("ops-backup")
        .arg("list")
        .arg(&foreign)
        .run()
        .fails_with(1);
    assert!(
        out.stderr
            .contains("is not a backup directory: none of its 1 entries"),
        "{}",
        out.stderr
    );

    let source = tmp.path().join("data");
    fs::create_dir(&source).unwrap();
    let backups = tmp.path().join("backups");
    let record = create(&source, &backups, &[]).success().record();
    fs::remove_file(record["path"].as_str().unwrap()).unwrap();
    fs::remove_file(catalog::manifest_path(
        &backups,
        record["id"].as_str().unwrap(),
    ))
    .unwrap();
    let out = ops("ops-backup").arg("list").arg(&backups).run().success();
    out.stderr_contains("no backups in");
    assert_eq!(out.stdout, "");
}
