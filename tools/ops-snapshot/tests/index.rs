//! The chunk index is a cache: a damaged one (a kill during sled's
//! recovery leaves one) is rebuilt from the packs with a warning by every
//! command that opens it, never a reason to fail.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use ops_snapshot::Repo;
use ops_tests::{assert_same_tree, bin_dir, ops, pseudo_random, test_cache};
use tempfile::tempdir;

fn damage_index(repo: &Path) {
    let dir = Repo::open(repo).unwrap().index_dir();
    // Garbage inside the log, not at its end (which sled takes for a torn
    // write and cuts off).
    let db = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("db/db"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&db, &pseudo_random(4000, 9), 100).unwrap();
}

fn tree(data: &Path) {
    fs::create_dir_all(data).unwrap();
    for i in 0..40 {
        fs::write(data.join(format!("f{i:02}")), pseudo_random(60_000, i)).unwrap();
    }
}

#[test]
fn a_damaged_index_is_rebuilt_with_a_warning_by_create_verify_and_restore() {
    std::env::set_var("OPS_CACHE_DIR", test_cache());
    let tmp = tempdir().unwrap();
    let (data, repo) = (tmp.path().join("data"), tmp.path().join("repo"));
    tree(&data);
    let create = || {
        ops("ops-snapshot")
            .arg("create")
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .run()
            .success()
    };
    // sled takes damage in a log it has not yet reopened for a torn end.
    create();
    create();
    damage_index(&repo);
    let out = create();
    out.stderr_contains("rebuilding it from the packs");
    let added = out.record()["added_bytes"].as_u64().unwrap();
    assert!(added < 10_000, "{added}: {}", out.stderr);

    create();
    damage_index(&repo);
    let checked = ops_snapshot::verify(
        &repo,
        None,
        ops_snapshot::ReadData::All,
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(checked.snapshots.iter().all(|s| s.errors.is_empty()));
    assert!(
        checked.unused_damage.is_empty(),
        "{:?}",
        checked.unused_damage
    );

    create();
    damage_index(&repo);
    let to = tmp.path().join("restored");
    let out = ops("ops-snapshot")
        .args(["restore", "latest", "--repo"])
        .arg(&repo)
        .arg("--to")
        .arg(&to)
        .run()
        .success();
    out.stderr_contains("rebuilding it from the packs");
    assert_same_tree(&data, &to);
}

#[test]
fn creates_killed_while_the_index_opens_never_leave_an_index_that_fails_later_runs() {
    std::env::set_var("OPS_CACHE_DIR", test_cache());
    let tmp = tempdir().unwrap();
    let (data, repo) = (tmp.path().join("data"), tmp.path().join("repo"));
    tree(&data);
    let seed = jiff::Timestamp::now().as_nanosecond() as u64;
    eprintln!("seed {seed}");
    for round in 0..20u64 {
        fs::write(
            data.join(format!("f{:02}", round % 40)),
            pseudo_random(60_000, 100 + round),
        )
        .unwrap();
        let mut child = Command::new(bin_dir().join("ops-snapshot"))
            .arg("create")
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .env("OPS_CACHE_DIR", test_cache())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        sleep(Duration::from_micros(
            5_000 + (seed.wrapping_mul(2 * round + 1) >> 11) % 80_000,
        ));
        let _ = child.kill();
        child.wait().unwrap();
    }
    let out = ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .run()
        .success();
    let id = out.record()["id"].as_str().unwrap().to_owned();
    let to = tmp.path().join("restored");
    ops("ops-snapshot")
        .args(["restore", &id, "--repo"])
        .arg(&repo)
        .arg("--to")
        .arg(&to)
        .run()
        .success();
    assert_same_tree(&data, &to);
}
