//! Crashes and concurrency: `create` and `gc` killed at random moments, and
//! run side by side, never leave a repository that fails `--read-data` or a
//! listed snapshot that does not restore byte-identical.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use ops_snapshot::{verify, ReadData};
use ops_tests::{assert_same_tree, bin_dir, pseudo_random};
use tempfile::tempdir;

fn spawn(args: &[&str], repo: &Path) -> Child {
    Command::new(bin_dir().join("ops-snapshot"))
        .args(args)
        .arg("--repo")
        .arg(repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills `child` after `delay` unless it finished; whether it finished.
fn kill_after(mut child: Child, delay: Duration) -> bool {
    sleep(delay);
    if let Some(status) = child.try_wait().unwrap() {
        return status.success();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    false
}

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every listed snapshot restores to the tree kept for its name, and the
/// repository passes a full read of its data.
fn assert_repository_whole(repo: &Path, expected: &Path, scratch: &Path) {
    let checked = verify(repo, None, ReadData::All, Duration::from_secs(30)).unwrap();
    for snapshot in &checked.snapshots {
        assert!(
            snapshot.errors.is_empty(),
            "{}: {:?}",
            snapshot.snapshot.id,
            snapshot.errors
        );
    }
    assert!(
        checked.unused_damage.is_empty(),
        "{:?}",
        checked.unused_damage
    );
    for snapshot in ops_snapshot::list(repo).unwrap() {
        let to = scratch.join(&snapshot.id);
        let out = Command::new(bin_dir().join("ops-snapshot"))
            .args(["restore", &snapshot.id, "--repo"])
            .arg(repo)
            .arg("--to")
            .arg(&to)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_tree(&expected.join(&snapshot.name), &to);
        fs::remove_dir_all(&to).unwrap();
    }
}

#[test]
fn create_and_gc_killed_at_random_moments_leave_every_snapshot_whole() {
    // In-process calls and children must use the tests' index cache.
    std::env::set_var("OPS_CACHE_DIR", ops_tests::test_cache());
    let seed = jiff::Timestamp::now().as_nanosecond() as u64;
    eprintln!("seed {seed}");
    let mut random = Lcg(seed);
    let tmp = tempdir().unwrap();
    let (data, repo, expected) = (
        tmp.path().join("data"),
        tmp.path().join("repo"),
        tmp.path().join("expected"),
    );
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(&expected).unwrap();
    for i in 0..24 {
        let size = 50_000 + random.below(400_000) as usize;
        fs::write(data.join(format!("f{i:02}")), pseudo_random(size, i)).unwrap();
    }
    let mut finished = 0;
    for round in 0..16u64 {
        for _ in 0..4 {
            let i = random.below(24);
            fs::write(
                data.join(format!("f{i:02}")),
                pseudo_random(100_000 + random.below(300_000) as usize, round * 100 + i),
            )
            .unwrap();
        }
        let name = format!("round{round:02}");
        copy_tree(&data, &expected.join(&name));
        let create = spawn(&["create", data.to_str().unwrap(), "--name", &name], &repo);
        finished += u32::from(kill_after(create, Duration::from_millis(random.below(400))));
        if repo.join("config").exists() {
            let listed = ops_snapshot::list(&repo).unwrap();
            if listed.len() > 2 {
                let oldest = &listed[random.below(listed.len() as u64 - 1) as usize];
                ops_snapshot::forget(
                    &repo,
                    std::slice::from_ref(&oldest.id),
                    Duration::from_secs(10),
                    "ops-prune",
                )
                .unwrap();
            }
            let gc = spawn(&["gc", "--max-unused", "0%"], &repo);
            kill_after(gc, Duration::from_millis(random.below(200)));
        }
    }
    eprintln!("{finished} of 16 creates finished before their kill");
    assert_repository_whole(&repo, &expected, tmp.path());
    // The repository works on: a last snapshot and gc complete.
    let name = "final";
    copy_tree(&data, &expected.join(name));
    assert!(
        spawn(&["create", data.to_str().unwrap(), "--name", name], &repo)
            .wait()
            .unwrap()
            .success()
    );
    assert!(spawn(&["gc"], &repo).wait().unwrap().success());
    assert_repository_whole(&repo, &expected, tmp.path());
}

#[test]
fn create_during_gc_keeps_the_chunks_it_reuses() {
    // In-process calls and children must use the tests' index cache.
    std::env::set_var("OPS_CACHE_DIR", ops_tests::test_cache());
    let tmp = tempdir().unwrap();
    let (data, repo, expected) = (
        tmp.path().join("data"),
        tmp.path().join("repo"),
        tmp.path().join("expected"),
    );
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(&expected).unwrap();
    for i in 0..16 {
        fs::write(data.join(format!("f{i:02}")), pseudo_random(300_000, i)).unwrap();
    }
    for round in 0..6u64 {
        let name = format!("round{round}");
        copy_tree(&data, &expected.join(&name));
        assert!(
            spawn(&["create", data.to_str().unwrap(), "--name", "old"], &repo)
                .wait()
                .unwrap()
                .success()
        );
        // Forget it: all its data is garbage to a gc that starts now, yet
        // the create started alongside reuses every chunk of it.
        let ids: Vec<String> = ops_snapshot::list(&repo)
            .unwrap()
            .into_iter()
            .filter(|s| s.name == "old")
            .map(|s| s.id)
            .collect();
        ops_snapshot::forget(&repo, &ids, Duration::from_secs(10), "ops-prune").unwrap();
        let gc = spawn(&["gc", "--max-unused", "0%"], &repo);
        sleep(Duration::from_millis(round * 15));
        let create = spawn(&["create", data.to_str().unwrap(), "--name", &name], &repo);
        let (gc, create) = (
            gc.wait_with_output().unwrap(),
            create.wait_with_output().unwrap(),
        );
        assert!(gc.status.success() && create.status.success());
        fs::write(
            data.join(format!("f{round:02}")),
            pseudo_random(300_000, 1000 + round),
        )
        .unwrap();
    }
    assert_repository_whole(&repo, &expected, tmp.path());
}
