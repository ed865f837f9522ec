//! Trust in what others can write (issue 15, cases 2 and 19): files the
//! tools create or truncate in places others can write (lock files, the
//! Prometheus file) are not opened through planted links, a file we replace
//! keeps its owner and mode, and a huge line on stdin costs no more memory
//! than the record reader's cap.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use ops_tests::{dated_backups, is_root, names, ops, sh, Outcome};
use tempfile::tempdir;

const VICTIM: &str = "root:$6$secret:19000:0:99999:7:::\n";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn refused(out: Outcome, victim: &Path) {
    let out = out.fails_with(2);
    out.stderr_contains("refusing the lock file")
        .stderr_contains("symbolic link");
    assert_eq!(fs::read_to_string(victim).unwrap(), VICTIM);
}

#[test]
fn a_lock_file_symlinked_to_another_file_makes_no_tool_overwrite_it() {
    let tmp = tempdir().unwrap();
    let victim = tmp.path().join("shadow");
    fs::write(&victim, VICTIM).unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(
        &backups,
        "db",
        &["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"],
    );
    symlink(&victim, backups.join(".ops-lock")).unwrap();
    let before = names(&backups);

    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a").unwrap();
    refused(
        ops("ops-backup")
            .args(["create", s(&data), "--to", s(&backups)])
            .run(),
        &victim,
    );
    refused(
        ops("ops-prune")
            .args(["--keep-last", "1", s(&backups)])
            .run(),
        &victim,
    );
    assert_eq!(names(&backups), before, "nothing added or deleted");

    let leftover = backups.join("db_20260101_000000.tar.zst.ops-tmp");
    fs::write(&leftover, "partial").unwrap();
    let aged = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&leftover)
        .status()
        .unwrap();
    assert!(aged.success());
    let out = ops("ops-health")
        .args(["--backups", s(&backups), "--max-age", "1000d", "--fix"])
        .run();
    let fix = out
        .records()
        .into_iter()
        .find(|r| r["check"] == "fix")
        .unwrap_or_else(|| panic!("no fix record: {out:?}"));
    assert_ne!(fix["status"], "ok", "{fix}");
    assert!(
        fix["message"].as_str().unwrap().contains("refusing"),
        "{fix}"
    );
    assert!(leftover.exists());
    assert_eq!(fs::read_to_string(&victim).unwrap(), VICTIM);

    let repo = tmp.path().join("repo");
    ops("ops-snapshot")
        .args(["create", s(&data), "--repo", s(&repo)])
        .run()
        .success();
    fs::remove_file(repo.join(".ops-lock")).unwrap();
    symlink(&victim, repo.join(".ops-lock")).unwrap();
    refused(
        ops("ops-snapshot")
            .args(["create", s(&data), "--repo", s(&repo)])
            .run(),
        &victim,
    );
}

#[test]
fn a_prometheus_file_keeps_its_owner_and_mode_and_a_new_one_is_world_readable() {
    let tmp = tempdir().unwrap();
    let file = tmp.path().join("ops.prom");
    let write = || {
        ops("ops-health")
            .args(["--path", s(tmp.path()), "--format", "prometheus"])
            .arg("--prometheus-file")
            .arg(&file)
            .run()
            .success()
    };
    write();
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, 0o644);

    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let given = is_root() && std::os::unix::fs::chown(&file, Some(65534), Some(65534)).is_ok();
    write();
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    if given {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    } else {
        eprintln!("not root: the owner part is not checked");
    }
    assert!(fs::read_to_string(&file)
        .unwrap()
        .contains("ops_check_status{check=\"path\""));
}

#[test]
fn a_100_mb_stdin_line_is_refused_by_number_in_bounded_memory() {
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("/usr/bin/time not installed; skipped");
        return;
    }
    let out = sh("{ echo; head -c 100M /dev/zero | tr '\\0' x; echo; } \
         | /usr/bin/time -f 'maxrss_kib=%M' -o /dev/stderr ops-verify")
    .run()
    .fails_with(2);
    out.stderr_contains("input line 2 is longer than 16 MiB");
    let kib: u64 = out
        .stderr
        .split("maxrss_kib=")
        .nth(1)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {}", out.stderr));
    assert!(kib < 64 * 1024, "ops-verify used {kib} KiB for one line");
}
