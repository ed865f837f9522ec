//! Making a repository: the first create, killed at any moment or run twice
//! at once, always ends in one working repository.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use ops_tests::{bin_dir, ops, test_cache};
use tempfile::tempdir;

fn create(data: &Path, repo: &Path) -> Child {
    Command::new(bin_dir().join("ops-snapshot"))
        .arg("create")
        .arg(data)
        .arg("--repo")
        .arg(repo)
        .env("OPS_CACHE_DIR", test_cache())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn listed(repo: &Path) -> usize {
    ops("ops-snapshot")
        .args(["list", "--json", "--repo"])
        .arg(repo)
        .run()
        .success()
        .records()
        .len()
}

fn small_tree(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("a.txt"), "alpha\n").unwrap();
}

#[test]
fn a_directory_left_by_a_killed_first_create_becomes_the_repository() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    small_tree(&data);
    // What a kill between making the directories and committing the config
    // leaves behind.
    let repo = tmp.path().join("repo");
    for dir in ["snapshots", "packs"] {
        fs::create_dir_all(repo.join(dir)).unwrap();
    }
    fs::write(repo.join("config.ops-tmp"), "{\"form").unwrap();
    fs::write(repo.join(".ops-lock"), "").unwrap();
    let out = ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .run()
        .success();
    assert_eq!(out.record()["files"], 1);
    assert_eq!(listed(&repo), 1);
    assert!(!repo.join("config.ops-tmp").exists());
}

#[test]
fn a_directory_that_is_not_ours_is_still_refused() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    small_tree(&data);
    for extra in ["notes.txt", "snapshots/x"] {
        let repo = tmp.path().join(format!("repo-{}", extra.replace('/', "-")));
        fs::create_dir_all(repo.join("snapshots")).unwrap();
        fs::write(repo.join(extra), "someone's data").unwrap();
        let out = ops("ops-snapshot")
            .arg("create")
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .run()
            .fails_with(2);
        out.stderr_contains("not an ops-snapshot repository");
        assert!(!repo.join("config").exists());
        assert_eq!(
            fs::read_to_string(repo.join(extra)).unwrap(),
            "someone's data"
        );
    }
}

#[test]
fn two_first_creates_at_once_both_succeed_into_one_repository() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    small_tree(&data);
    for pair in 0..20 {
        let repo = tmp.path().join(format!("repo{pair}"));
        let (a, b) = (create(&data, &repo), create(&data, &repo));
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "pair {pair}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(listed(&repo), 2, "pair {pair}");
    }
}

#[test]
fn a_first_create_killed_at_any_moment_leaves_a_repository_the_next_create_uses() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    small_tree(&data);
    let seed = jiff::Timestamp::now().as_nanosecond() as u64;
    eprintln!("seed {seed}");
    let mut killed = 0;
    for round in 0..20u64 {
        let repo = tmp.path().join(format!("repo{round}"));
        let mut child = create(&data, &repo);
        // Spread the kills over the start of the run, where the
        // repository is made (10 to 60 ms in on a busy machine).
        let delay = (seed.wrapping_mul(2 * round + 1) >> 11) % 60_000;
        sleep(Duration::from_micros(5_000 + delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let out = create(&data, &repo).wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(listed(&repo) >= 1, "round {round}");
    }
    eprintln!("{killed} of 20 first creates killed");
}
