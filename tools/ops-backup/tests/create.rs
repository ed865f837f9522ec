//! ops-backup create and list, as a user runs them.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ops_tests::{is_root, names, only_file, ops, sample_tree};
use tempfile::tempdir;

#[test]
fn help_and_bad_arguments() {
    let help = ops("ops-backup").arg("--help").run().success();
    help.stdout_contains("create").stdout_contains("list");
    let help = ops("ops-backup").args(["create", "--help"]).run().success();
    help.stdout_contains("--exclude")
        .stdout_contains("--skip-unreadable");
    ops("ops-backup").args(["create", "."]).run().fails_with(2);
    let bad_level = ops("ops-backup")
        .args(["create", ".", "--to", "x", "--level", "99"])
        .run()
        .fails_with(2);
    assert!(
        bad_level.stderr.starts_with("ops-backup: error:"),
        "{}",
        bad_level.stderr
    );
    ops("ops-backup")
        .args(["create", ".", "--to", "x", "--name", "../evil"])
        .run()
        .fails_with(2);
    ops("ops-backup").arg("list").run().fails_with(2);
    assert!(ops("ops-backup")
        .arg("--version")
        .run()
        .success()
        .stdout
        .contains("ops-backup 0.1.0"));
}

#[test]
fn a_directory_becomes_an_owner_only_artifact_manifest_and_checksum() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let backups = tmp.path().join("backups");
    let out = ops("ops-backup")
        .arg("create")
        .arg(&data)
        .arg("--to")
        .arg(&backups)
        .run()
        .success();
    let record = out.record();
    let id = record["id"].as_str().unwrap();
    assert!(
        id.starts_with("data_") && id.len() == "data_20261121_120000".len(),
        "{id}"
    );
    assert_eq!(record["type"], "backup");
    assert_eq!(record["v"], 1);
    assert_eq!(record["name"], "data");
    assert_eq!(record["format"], "tar.zst");
    assert_eq!(record["mode"], "full");
    assert_eq!(record["source"]["kind"], "dir");
    assert!(record["parent"].is_null());
    let artifact = backups.join(format!("{id}.tar.zst"));
    assert_eq!(record["path"], artifact.to_str().unwrap());
    assert_eq!(record["bytes"], fs::metadata(&artifact).unwrap().len());
    assert_eq!(
        names(&backups),
        [
            format!("{id}.manifest.jsonl"),
            format!("{id}.tar.zst"),
            format!("{id}.tar.zst.sha256")
        ]
    );
    for name in names(&backups) {
        assert_eq!(
            fs::metadata(backups.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert_eq!(
        fs::metadata(&backups).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let checksum = fs::read_to_string(backups.join(format!("{id}.tar.zst.sha256"))).unwrap();
    assert_eq!(
        checksum,
        format!("{}  {id}.tar.zst\n", record["sha256"].as_str().unwrap())
    );
    let manifest = fs::read_to_string(backups.join(format!("{id}.manifest.jsonl"))).unwrap();
    for expected in [
        "\"path\":\"hello.txt\",\"kind\":\"file\",\"size\":6,\"mode\":\"0644\"",
        "\"kind\":\"symlink\"",
        "\"kind\":\"hardlink\"",
        "\"path\":\"empty\",\"kind\":\"dir\",\"size\":0,\"mode\":\"0700\"",
    ] {
        assert!(
            manifest.contains(expected),
            "manifest lacks {expected}:\n{manifest}"
        );
    }
}

#[test]
fn two_backups_in_the_same_second_get_different_ids() {
    let tmp = tempdir().unwrap();
    fs::write(tmp.path().join("f"), "x").unwrap();
    let backups = tmp.path().join("b");
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let out = ops("ops-backup")
                .arg("create")
                .arg(tmp.path().join("f"))
                .arg("--to")
                .arg(&backups)
                .run()
                .success();
            out.record()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    let listed = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .success()
        .records();
    let listed: Vec<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids, "list is oldest first");
}

#[test]
fn excludes_match_names_anywhere_and_paths_from_the_source() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    fs::write(data.join("sub/debug.log"), "noise").unwrap();
    fs::write(data.join("top.log"), "noise").unwrap();
    let backups = tmp.path().join("backups");
    ops("ops-backup")
        .arg("create")
        .arg(&data)
        .arg("--to")
        .arg(&backups)
        .args(["--exclude", "*.log", "--exclude", "sub/deeper"])
        .run()
        .success();
    let manifest = fs::read_to_string(only_file(&backups, ".manifest.jsonl")).unwrap();
    assert!(
        !manifest.contains(".log\"") && !manifest.contains("deeper"),
        "{manifest}"
    );
    assert!(manifest.contains("\"sub/notes.md\""));
}

#[test]
fn list_reports_leftovers_on_stderr_and_lists_only_backups() {
    let tmp = tempdir().unwrap();
    fs::write(tmp.path().join("f"), "x").unwrap();
    let backups = tmp.path().join("b");
    ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("f"))
        .arg("--to")
        .arg(&backups)
        .run()
        .success();
    fs::write(backups.join("f_20200101_000000.tar.zst.ops-tmp"), "partial").unwrap();
    fs::write(backups.join("old_dump.sql.zst"), "no manifest").unwrap();
    let out = ops("ops-backup").arg("list").arg(&backups).run().success();
    assert_eq!(out.records().len(), 1);
    assert!(
        out.stderr
            .contains("f_20200101_000000.tar.zst.ops-tmp: temporary file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("old_dump.sql.zst: artifact without a manifest"),
        "{}",
        out.stderr
    );
    let human = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .arg("--human")
        .run()
        .success();
    assert!(human.stdout.starts_with("ARTIFACT "), "{}", human.stdout);
    ops("ops-backup")
        .arg("list")
        .arg(tmp.path().join("missing"))
        .run()
        .fails_with(1);
}

#[test]
fn a_single_file_is_backed_up_under_its_own_name() {
    let tmp = tempdir().unwrap();
    fs::write(tmp.path().join("app.db"), "sqlite-ish").unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("app.db"))
        .arg("--to")
        .arg(tmp.path().join("b"))
        .run()
        .success();
    let record = out.record();
    assert_eq!(record["name"], "app.db");
    assert_eq!(record["source"]["kind"], "file");
    let listing = Command::new("tar")
        .arg("--zstd")
        .arg("-tf")
        .arg(record["path"].as_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "app.db\n");
}

#[test]
fn a_missing_source_or_unusable_target_fails_cleanly() {
    let tmp = tempdir().unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("nope"))
        .arg("--to")
        .arg(tmp.path().join("b"))
        .run()
        .fails_with(1);
    out.stderr_contains("cannot back up")
        .stderr_contains("No such file");
    fs::write(tmp.path().join("f"), "x").unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("f"))
        .arg("--to")
        .arg(tmp.path().join("no/such/dir"))
        .run()
        .fails_with(1);
    out.stderr_contains("cannot create backup directory");
    let out = ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("f"))
        .arg("--to")
        .arg(tmp.path().join("f"))
        .run()
        .fails_with(1);
    out.stderr_contains("is not a directory");
}

/// Runs ops-backup as `nobody` when the tests run as root, who reads everything.
fn as_unprivileged(args: &[&std::ffi::OsStr]) -> ops_tests::Outcome {
    let mut run = if is_root() {
        ops_tests::sh("exec setpriv --reuid=nobody --regid=nogroup --clear-groups \"$0\" \"$@\"")
            .arg(ops_tests::bin_dir().join("ops-backup"))
    } else {
        ops("ops-backup")
    };
    for arg in args {
        run = run.arg(arg);
    }
    run.run()
}

#[test]
fn unreadable_files_fail_the_backup_unless_skipped() {
    let tmp = tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("public.txt"), "ok").unwrap();
    fs::write(data.join("secret.txt"), "no").unwrap();
    fs::set_permissions(data.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let backups = tmp.path().join("backups");
    let out = as_unprivileged(&[
        "create".as_ref(),
        data.as_os_str(),
        "--to".as_ref(),
        backups.as_os_str(),
    ])
    .fails_with(1);
    out.stderr_contains("secret.txt")
        .stderr_contains("Permission denied");
    out.stderr_contains("--skip-unreadable");
    assert!(names(&backups).is_empty(), "{:?}", names(&backups));
    let out = as_unprivileged(&[
        "create".as_ref(),
        data.as_os_str(),
        "--to".as_ref(),
        backups.as_os_str(),
        "--skip-unreadable".as_ref(),
    ])
    .success();
    out.stderr_contains("secret.txt").stderr_contains("skipped");
    let manifest = fs::read_to_string(only_file(&backups, ".manifest.jsonl")).unwrap();
    assert!(manifest.contains("public.txt") && !manifest.contains("secret.txt"));
    assert!(manifest.contains("\"skipped\":1"));
}

#[test]
fn a_file_that_changes_while_read_is_reported_and_marked() {
    let Some(file) = [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/devices/system/cpu/online",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists()) else {
        eprintln!("skipped: no sysfs file whose size differs from its content");
        return;
    };
    let tmp = tempdir().unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(file)
        .arg("--to")
        .arg(tmp.path())
        .run()
        .success();
    out.stderr_contains("changed while it was being read");
    let manifest = fs::read_to_string(only_file(tmp.path(), ".manifest.jsonl")).unwrap();
    assert!(
        manifest.contains("\"changed\":true") && manifest.contains("\"changed\":1"),
        "{manifest}"
    );
}

#[test]
fn a_killed_backup_leaves_only_a_temporary_file() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    let big = fs::File::create(data.join("sparse")).unwrap();
    big.set_len(64 << 30).unwrap();
    let backups = tmp.path().join("backups");
    let mut child = Command::new(ops_tests::bin_dir().join("ops-backup"))
        .arg("create")
        .arg(&data)
        .arg("--to")
        .arg(&backups)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    let left = names(&backups);
    assert!(
        !left.is_empty() && left.iter().all(|n| n.ends_with(".ops-tmp")),
        "{left:?}"
    );
    let out = ops("ops-backup").arg("list").arg(&backups).run().success();
    assert!(out.records().is_empty());
    assert!(
        out.stderr
            .contains("temporary file left by an interrupted run"),
        "{}",
        out.stderr
    );
    let verify = ops("ops-verify").arg(&backups).run().success();
    assert!(verify.records().is_empty());
}

#[test]
fn a_full_disk_fails_with_a_clear_error_and_leaves_nothing() {
    let Some(disk) = ops_tests::SmallDisk::mount() else {
        return;
    };
    let tmp = tempdir().unwrap();
    fs::write(
        tmp.path().join("noise.bin"),
        ops_tests::pseudo_random(4 << 20, 3),
    )
    .unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("noise.bin"))
        .arg("--to")
        .arg(disk.path.join("b"))
        .run();
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains("No space left on device")
        .stderr_contains("free space");
    let left = names(&disk.path.join("b"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_target_directory_that_is_not_writable_fails_cleanly() {
    let tmp = tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f.txt"), "x").unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let locked = tmp.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    let out = as_unprivileged(&[
        "create".as_ref(),
        data.as_os_str(),
        "--to".as_ref(),
        locked.as_os_str(),
    ])
    .fails_with(1);
    out.stderr_contains("cannot write to backup directory")
        .stderr_contains("Permission denied");
    assert!(names(&locked).is_empty());
}

#[test]
fn ctrl_c_during_a_backup_removes_its_temporary_files() {
    let tmp = tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // Compressible, so level 19 is slow: seconds, not the instant of data
    // stored as is.
    let text: Vec<u8> = ops_tests::pseudo_random(64 << 20, 3)
        .into_iter()
        .map(|b| b'a' + b % 4)
        .collect();
    fs::write(src.join("big.txt"), text).unwrap();
    let backups = tmp.path().join("backups");
    let child = Command::new(ops_tests::bin_dir().join("ops-backup"))
        .arg("create")
        .arg(&src)
        .args(["--level", "19", "--threads", "1", "--to"])
        .arg(&backups)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !names(&backups).iter().any(|n| n.ends_with(".ops-tmp")) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no temporary file"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (status, stderr) = ops_tests::interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.starts_with("ops-backup: error: interrupted; no backup was written"),
        "{stderr}"
    );
    assert_eq!(names(&backups), Vec::<String>::new(), "left behind");
}

#[test]
fn two_first_backups_into_a_new_directory_both_succeed() {
    let tmp = tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), "a\n").unwrap();
    for round in 0..20 {
        let backups = tmp.path().join(format!("backups{round}"));
        let start = || {
            Command::new(ops_tests::bin_dir().join("ops-backup"))
                .arg("create")
                .arg(&src)
                .arg("--to")
                .arg(&backups)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (start(), start());
        for child in [first, second] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(names(&backups).len(), 6, "round {round}");
    }
}

#[test]
fn a_backup_directory_inside_the_source_is_refused_unless_excluded() {
    let tmp = tempdir().unwrap();
    let src = tmp.path().join("backups");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("data.txt"), "data\n").unwrap();
    fs::write(src.join("other_20250101_000000.tar.zst.ops-tmp"), "growing").unwrap();
    let out = ops("ops-backup")
        .arg("create")
        .arg(&src)
        .arg("--to")
        .arg(src.join("vol"))
        .run()
        .fails_with(2);
    out.stderr_contains("would archive itself");
    out.stderr_contains("--exclude 'vol'");
    assert!(!src.join("vol").exists(), "written despite the refusal");
    let out = ops("ops-backup")
        .arg("create")
        .arg(&src)
        .current_dir(&src)
        .args(["--to", "."])
        .run()
        .fails_with(2);
    out.stderr_contains("would archive itself");

    let record = ops("ops-backup")
        .arg("create")
        .arg(&src)
        .args(["--exclude", "vol", "--to"])
        .arg(src.join("vol"))
        .run()
        .success()
        .record();
    let listing = Command::new("tar")
        .args(["--zstd", "-tf", record["path"].as_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(listing.trim(), "data.txt", "{listing}");
}
