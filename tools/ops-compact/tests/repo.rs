//! ops-compact --repo: a snapshot repository is compacted by its own gc.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;

use ops_tests::{ops, pseudo_random};
use tempfile::tempdir;

#[test]
fn a_repository_is_compacted_like_ops_snapshot_gc_does() {
    let tmp = tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let mut ids = Vec::new();
    for (name, seed) in [("old", 1), ("new", 2)] {
        let data = tmp.path().join(name);
        fs::create_dir(&data).unwrap();
        fs::write(data.join("blob"), pseudo_random(2 << 20, seed)).unwrap();
        let record = ops("ops-snapshot")
            .arg("create")
            .arg(&data)
            .arg("--repo")
            .arg(&repo)
            .run()
            .success()
            .record();
        ids.push(record["id"].as_str().unwrap().to_owned());
    }
    fs::remove_file(repo.join("snapshots").join(&ids[0])).unwrap();

    let plan = ops("ops-compact")
        .arg("--repo")
        .arg(&repo)
        .arg("--dry-run")
        .run()
        .success()
        .record();
    assert_eq!(
        (plan["kind"].as_str(), plan["action"].as_str()),
        (Some("repo"), Some("plan"))
    );
    let done = ops("ops-compact")
        .arg("--repo")
        .arg(&repo)
        .arg("--max-unused")
        .arg("0%")
        .run()
        .success()
        .record();
    assert_eq!(done["action"], "gc");
    let (before, after) = (
        done["before_bytes"].as_u64().unwrap(),
        done["after_bytes"].as_u64().unwrap(),
    );
    assert!(before - after > 2_000_000, "{done}");
    let restored = tmp.path().join("restored");
    ops("ops-snapshot")
        .args(["restore", &ids[1], "--repo"])
        .arg(&repo)
        .arg("--to")
        .arg(&restored)
        .run()
        .success();
    assert_eq!(
        fs::read(restored.join("blob")).unwrap(),
        pseudo_random(2 << 20, 2)
    );
}

#[test]
fn repository_flags_and_targets_do_not_mix() {
    let tmp = tempdir().unwrap();
    let out = ops("ops-compact")
        .arg("--repo")
        .arg(tmp.path())
        .run()
        .fails_with(2);
    out.stderr_contains("not an ops-snapshot repository");
    let out = ops("ops-compact")
        .args(["sled:/nowhere", "--max-unused", "5%"])
        .run()
        .fails_with(2);
    out.stderr_contains("--max-unused applies to --repo");
    ops("ops-compact")
        .args(["--repo", "/x", "--files", "/y"])
        .run()
        .fails_with(2);
}
