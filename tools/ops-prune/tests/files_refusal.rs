//! ops-prune --files never deletes from a snapshot repository: its old
//! packs are live data, its snapshots go with --repo only. Refused like a
//! backup directory, whether named, reached by a walk or a glob, or named
//! by a `file` record on stdin; nothing is deleted.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::Command;

use ops_tests::ops;
use tempfile::tempdir;

/// Every path under `root`: what must not change.
fn paths(root: &Path) -> Vec<String> {
    let mut paths: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    paths.sort();
    paths
}

#[test]
fn a_snapshot_repository_and_anything_inside_it_is_refused() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a\n").unwrap();
    let place = tmp.path().join("place");
    fs::create_dir(&place).unwrap();
    let repo = place.join("repo");
    for n in 0..2 {
        fs::write(data.join("n.txt"), format!("{n}\n")).unwrap();
        ops("ops-snapshot")
            .arg("create")
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .run()
            .success();
    }
    // Without its config (a crash during the first create) it is one still.
    let broken = place.join("broken");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&repo)
        .arg(&broken)
        .status()
        .unwrap()
        .success());
    fs::remove_file(broken.join("config")).unwrap();
    let before = paths(&place);
    let args = [
        place.clone(),
        repo.clone(),
        repo.join("config"),
        repo.join("packs"),
        broken.join("snapshots"),
        repo.join("*"),
        repo.join("packs/*/*"),
        place.join("*/snapshots/*"),
    ];
    for arg in args {
        let out = ops("ops-prune")
            .arg("--files")
            .arg(&arg)
            .args(["--keep-last", "0", "--allow-remove-all"])
            .run();
        assert_eq!(out.code, 2, "--files {}: {out:?}", arg.display());
        assert!(
            out.stderr.contains("ops-snapshot repository"),
            "--files {}: {}",
            arg.display(),
            out.stderr
        );
        assert_eq!(paths(&place), before, "--files {}", arg.display());
    }
    let pack = walkdir::WalkDir::new(repo.join("packs"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .find(|p| p.is_file())
        .unwrap();
    let record = format!(
        "{{\"type\":\"file\",\"v\":1,\"path\":{:?},\"time\":\"2020-01-01T00:00:00Z\",\"bytes\":1}}\n",
        pack.display().to_string()
    );
    let out = ops("ops-prune")
        .args(["--keep-last", "0", "--allow-remove-all"])
        .stdin(record)
        .run();
    assert_eq!(out.code, 2, "{out:?}");
    out.stderr_contains("ops-snapshot repository");
    assert_eq!(paths(&place), before, "a file record on stdin");
}

#[test]
fn a_sled_database_and_anything_inside_it_is_refused() {
    let tmp = tempdir().unwrap();
    let place = tmp.path().join("place");
    let db = place.join("app/db");
    fs::create_dir_all(&db).unwrap();
    ops_tests::sled_db::churned_db(&db);
    let before = paths(&place);
    for arg in [place.clone(), db.clone(), db.join("conf"), db.join("*")] {
        let out = ops("ops-prune")
            .arg("--files")
            .arg(&arg)
            .args(["--keep-last", "0", "--allow-remove-all"])
            .run();
        assert_eq!(out.code, 2, "--files {}: {out:?}", arg.display());
        assert!(
            out.stderr.contains("is a sled database"),
            "--files {}: {}",
            arg.display(),
            out.stderr
        );
        assert_eq!(paths(&place), before, "--files {}", arg.display());
    }
}
