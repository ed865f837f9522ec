//! A tree that changes while it is snapshotted: what vanishes after it was
//! listed is a warning, as in GNU tar, and the snapshot is still recorded
//! (exit 1); a file replaced by a symlink is never read through the link.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use ops_tests::{bin_dir, ops, pseudo_random, test_cache};
use serde_json::Value;
use tempfile::tempdir;

const FILES: usize = 300;

fn fill(data: &Path) {
    fs::create_dir_all(data).unwrap();
    for i in 0..FILES {
        fs::write(
            data.join(format!("f{i:03}")),
            pseudo_random(8_000, i as u64),
        )
        .unwrap();
    }
}

/// Deletes every other file and replaces the rest with symlinks to `secret`.
fn churn(data: &Path, secret: &Path) {
    for i in (0..FILES).rev() {
        let path = data.join(format!("f{i:03}"));
        if i % 2 == 0 {
            let _ = fs::remove_file(&path);
        } else {
            let link = data.join(format!(".l{i:03}"));
            std::os::unix::fs::symlink(secret, &link).unwrap();
            fs::rename(&link, &path).unwrap();
        }
    }
}

#[test]
fn files_deleted_or_replaced_during_create_are_warnings_and_the_snapshot_is_recorded() {
    let tmp = tempdir().unwrap();
    let (data, repo, secret) = (
        tmp.path().join("data"),
        tmp.path().join("repo"),
        tmp.path().join("shadow"),
    );
    fs::write(&secret, "SECRET shadow contents").unwrap();
    let mut churned = 0;
    for round in 0..10u64 {
        fs::remove_dir_all(&data).ok();
        fill(&data);
        let child = Command::new(bin_dir().join("ops-snapshot"))
            .arg("create")
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .arg("--json")
            .env("OPS_CACHE_DIR", test_cache())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Let the listing start at varying points before the churn.
        std::thread::sleep(std::time::Duration::from_millis(round * 4));
        churn(&data, &secret);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let code = out.status.code().unwrap();
        assert_eq!(code, 0, "round {round}: {stderr}");
        let record: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|_| panic!("round {round}: no record: {stderr}"));
        let vanished = record["vanished"].as_u64().unwrap_or(0);
        let changed = record["changed"].as_u64().unwrap_or(0);
        if vanished + changed > 0 {
            churned += 1;
            assert!(stderr.contains("recorded, but"), "round {round}: {stderr}");
        }
        if vanished > 0 {
            assert!(
                stderr.contains("before it was read; left out"),
                "round {round}: {stderr}"
            );
        }
        let to = tmp.path().join(format!("restored{round}"));
        ops("ops-snapshot")
            .args(["restore", record["id"].as_str().unwrap(), "--repo"])
            .arg(&repo)
            .arg("--to")
            .arg(&to)
            .run()
            .success();
        for entry in fs::read_dir(&to).unwrap() {
            let path = entry.unwrap().path();
            if path.symlink_metadata().unwrap().is_file() {
                assert_ne!(
                    fs::read(&path).unwrap(),
                    fs::read(&secret).unwrap(),
                    "round {round}: {} holds what its replacing link points to",
                    path.display()
                );
            }
        }
    }
    eprintln!("{churned} of 10 rounds saw files vanish or change");
    assert!(
        churned > 0,
        "no round raced the churn; the test proved nothing"
    );
}
