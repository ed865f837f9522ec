//! A repository may be written by someone else: what its files say is
//! checked before it becomes a path, and a copy of a repository is a
//! repository of its own.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ops_snapshot::{verify, ReadData};
use ops_tests::{assert_same_tree, ops, pseudo_random};
use tempfile::tempdir;

fn snapshot(data: &Path, repo: &Path, cache: &Path) {
    ops("ops-snapshot")
        .arg("create")
        .arg(data)
        .arg("--repo")
        .arg(repo)
        .env("OPS_CACHE_DIR", cache)
        .run()
        .success();
}

fn set_id(repo: &Path, id: &str) {
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo.join("config")).unwrap()).unwrap();
    config["id"] = id.into();
    fs::write(repo.join("config"), config.to_string()).unwrap();
}

#[test]
fn a_repository_id_that_is_a_path_is_refused_and_nothing_outside_is_touched() {
    let tmp = tempdir().unwrap();
    let (data, repo, cache) = (
        tmp.path().join("data"),
        tmp.path().join("repo"),
        tmp.path().join("cache"),
    );
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "a").unwrap();
    snapshot(&data, &repo, &cache);
    // An application's sled database, in the README's layout.
    let victim = tmp.path().join("app");
    fs::create_dir_all(victim.join("db")).unwrap();
    fs::write(victim.join("db/conf"), "the app's").unwrap();
    let absolute = victim.display().to_string();
    for id in ["../app", absolute.as_str(), "ABC", "a/b"] {
        set_id(&repo, id);
        for args in [&["rebuild-index"][..], &["list"], &["gc"]] {
            let out = ops("ops-snapshot")
                .args(args)
                .arg("--repo")
                .arg(&repo)
                .env("OPS_CACHE_DIR", &cache)
                .run()
                .fails_with(2);
            assert!(out.stderr.contains("repository id"), "{id}: {}", out.stderr);
        }
        let out = ops("ops-snapshot")
            .arg("create")
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .env("OPS_CACHE_DIR", &cache)
            .run()
            .fails_with(2);
        assert!(out.stderr.contains("repository id"), "{id}: {}", out.stderr);
        let out = ops("ops-health")
            .args(["--repo"])
            .arg(&repo)
            .args(["--fix", "--json"])
            .env("OPS_CACHE_DIR", &cache)
            .run();
        assert_ne!(out.code, 0, "{id}: {}", out.stdout);
        assert_eq!(
            fs::read_to_string(victim.join("db/conf")).unwrap(),
            "the app's"
        );
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 1, "{id}");
    }
}

#[test]
fn a_copied_repository_does_not_share_its_index_with_the_original() {
    let tmp = tempdir().unwrap();
    let (data, repo1, repo2, cache) = (
        tmp.path().join("data"),
        tmp.path().join("repo1"),
        tmp.path().join("repo2"),
        tmp.path().join("cache"),
    );
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), pseudo_random(300_000, 1)).unwrap();
    snapshot(&data, &repo1, &cache);
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&repo1)
        .arg(&repo2)
        .status()
        .unwrap()
        .success());
    // New data in the copy only; then the original's old data goes.
    fs::write(data.join("a"), pseudo_random(300_000, 2)).unwrap();
    snapshot(&data, &repo2, &cache);
    // A shared index lists the copy's new pack as gone from the original.
    let health = ops("ops-health")
        .args(["--repo"])
        .arg(&repo1)
        .args(["--json", "--max-age", "1h"])
        .env("OPS_CACHE_DIR", &cache)
        .run();
    health.stdout_lacks("gone from disk");
    assert_eq!(health.code, 0, "{}", health.stdout);
    std::env::set_var("OPS_CACHE_DIR", &cache);
    for repo in [&repo1, &repo2] {
        let checked = verify(repo, None, ReadData::All, Duration::from_secs(10)).unwrap();
        for snapshot in &checked.snapshots {
            assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        }
        assert!(
            checked.unused_damage.is_empty(),
            "{:?}",
            checked.unused_damage
        );
    }
    snapshot(&data, &repo1, &cache);
    let ids: Vec<String> = ops_snapshot::list(&repo1)
        .unwrap()
        .into_iter()
        .take(1)
        .map(|s| s.id)
        .collect();
    ops_snapshot::forget(&repo1, &ids, Duration::from_secs(10), "ops-prune").unwrap();
    ops("ops-snapshot")
        .args(["gc", "--max-unused", "0%", "--repo"])
        .arg(&repo1)
        .env("OPS_CACHE_DIR", &cache)
        .run()
        .success();
    let to = tmp.path().join("restored");
    ops("ops-snapshot")
        .args(["restore", "latest", "--repo"])
        .arg(&repo2)
        .arg("--to")
        .arg(&to)
        .env("OPS_CACHE_DIR", &cache)
        .run()
        .success();
    assert_same_tree(&data, &to);
    let listed = ops_snapshot::list(&repo2).unwrap();
    assert_eq!(listed.len(), 2);
}

#[test]
fn an_index_directory_that_is_a_symlink_is_refused() {
    let tmp = tempdir().unwrap();
    let (data, repo, cache) = (
        tmp.path().join("data"),
        tmp.path().join("repo"),
        tmp.path().join("cache"),
    );
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "a").unwrap();
    snapshot(&data, &repo, &cache);
    // A config without an id keeps its index in REPO/index.
    set_id(&repo, "");
    let victim = tmp.path().join("app");
    fs::create_dir_all(victim.join("db")).unwrap();
    fs::write(victim.join("db/conf"), "the app's").unwrap();
    std::os::unix::fs::symlink(&victim, repo.join("index")).unwrap();
    let out = ops("ops-snapshot")
        .args(["rebuild-index", "--repo"])
        .arg(&repo)
        .env("OPS_CACHE_DIR", &cache)
        .run()
        .fails_with(1);
    out.stderr_contains("symlink");
    assert_eq!(
        fs::read_to_string(victim.join("db/conf")).unwrap(),
        "the app's"
    );
}

#[test]
fn forget_refuses_a_snapshot_id_that_is_a_path() {
    let tmp = tempdir().unwrap();
    let (data, repo, cache) = (
        tmp.path().join("data"),
        tmp.path().join("repo"),
        tmp.path().join("cache"),
    );
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "a").unwrap();
    snapshot(&data, &repo, &cache);
    fs::write(tmp.path().join("other"), "keep").unwrap();
    let err = ops_snapshot::forget(
        &repo,
        &["../../other".into()],
        Duration::from_secs(5),
        "ops-prune",
    )
    .unwrap_err();
    assert!(err.is_usage(), "{err}");
    assert!(tmp.path().join("other").exists());
    assert_eq!(ops_snapshot::list(&repo).unwrap().len(), 1);
}

#[test]
fn a_restored_tree_gets_the_owner_and_mode_of_its_top_directory_back() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !ops_tests::is_root() {
        eprintln!("skipped: needs root to make files of another user");
        return;
    }
    let tmp = tempdir().unwrap();
    let (data, repo, cache) = (
        tmp.path().join("data"),
        tmp.path().join("repo"),
        tmp.path().join("cache"),
    );
    fs::create_dir(&data).unwrap();
    fs::write(data.join("file"), b"x").unwrap();
    std::os::unix::fs::chown(&data, Some(1234), Some(2345)).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o750)).unwrap();
    snapshot(&data, &repo, &cache);
    let to = tmp.path().join("restored");
    ops("ops-snapshot")
        .args(["restore", "latest", "--repo"])
        .arg(&repo)
        .arg("--to")
        .arg(&to)
        .env("OPS_CACHE_DIR", &cache)
        .run()
        .success();
    let meta = fs::metadata(&to).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1234, 2345, 0o750)
    );
}
