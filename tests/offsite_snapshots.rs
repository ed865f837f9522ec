//! Snapshot repositories in a bucket, against a real SeaweedFS on
//! 127.0.0.1: every tool that takes `--repo` on `s3://BUCKET/PREFIX`, the
//! objects a snapshot writes, lock objects (held, waited for, stale), gc
//! racing creates, and a server killed mid-snapshot.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ops_tests::s3::{server, start, S3Server};
use ops_tests::{assert_same_tree, bin_dir, ops, pseudo_random, sample_tree, test_cache, Outcome};

fn tool(s3: &S3Server, name: &str, args: &[&str]) -> Outcome {
    ops(name).s3(s3).args(args).run()
}

fn keys(s3: &S3Server, place: &str) -> Vec<String> {
    let out = s3.aws(&["s3", "ls", "--recursive", &format!("{place}/")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = place
        .split_once("://")
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .1;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .map(|key| {
            key.strip_prefix(prefix)
                .unwrap()
                .trim_start_matches('/')
                .to_owned()
        })
        .collect()
}

fn many_small_files(root: &Path, count: usize) {
    for i in 0..count {
        let dir = root.join(format!("d{:03}", i / 500));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("f{i}")),
            format!("file {i} {}\n", "x".repeat(i % 300)),
        )
        .unwrap();
    }
}

#[test]
fn a_repository_in_a_bucket_snapshots_restores_verifies_prunes_and_gcs() {
    let s3 = server();
    let repo = format!("s3://{}/web01-snaps", s3.bucket("snaps"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    many_small_files(&data.join("many"), 3000);
    fs::write(data.join("big.bin"), pseudo_random(40 << 20, 3)).unwrap();

    let first = tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success()
    .record();
    assert_eq!(first["repo"], repo.as_str(), "{first}");
    let stored = keys(s3, &repo);
    let packs = stored.iter().filter(|k| k.starts_with("packs/")).count();
    assert!(stored.contains(&"config".to_owned()), "{stored:?}");
    assert_eq!(
        stored
            .iter()
            .filter(|k| k.starts_with("snapshots/"))
            .count(),
        1,
        "{stored:?}"
    );
    // 3000 files and 40 MiB: a handful of 16 MiB packs, not one object per file.
    assert!((2..=8).contains(&packs), "{packs} packs: {stored:?}");
    assert!(
        !stored.iter().any(|k| k.starts_with(".ops-lock/")),
        "the lock object goes when the run ends: {stored:?}"
    );

    let again = tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success()
    .record();
    assert_eq!(
        again["added_bytes"], 0,
        "an unchanged tree adds nothing: {again}"
    );
    assert_eq!(again["parent"], first["id"], "{again}");

    let out = tmp.path().join("restored");
    tool(
        s3,
        "ops-snapshot",
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .success();
    assert_same_tree(&data, &out);

    let listed = tool(s3, "ops-snapshot", &["list", "--repo", &repo])
        .success()
        .records();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let checked = tool(
        s3,
        "ops-verify",
        &["--repo", &repo, "--read-data-subset", "10%"],
    )
    .success()
    .records();
    assert!(
        checked.iter().all(|r| r["verify"]["ok"] == true),
        "{checked:?}"
    );
    let full = tool(s3, "ops-verify", &["--repo", &repo, "--read-data"])
        .success()
        .records();
    assert!(full.iter().all(|r| r["verify"]["ok"] == true), "{full:?}");

    // Forget the first, change the tree, gc: the second still restores.
    fs::remove_file(data.join("big.bin")).unwrap();
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();
    tool(s3, "ops-prune", &["--keep-last", "1", "--repo", &repo]).success();
    let gc = tool(
        s3,
        "ops-snapshot",
        &["gc", "--repo", &repo, "--max-unused", "0%"],
    )
    .success()
    .record();
    assert_eq!(gc["action"], "gc", "{gc}");
    assert!(
        gc["after_bytes"].as_u64() < gc["before_bytes"].as_u64(),
        "{gc}"
    );
    tool(s3, "ops-compact", &["--repo", &repo]).success();
    let out = tmp.path().join("after-gc");
    tool(
        s3,
        "ops-snapshot",
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .success();
    assert_same_tree(&data, &out);
    tool(s3, "ops-verify", &["--repo", &repo, "--read-data"]).success();

    let health = tool(
        s3,
        "ops-health",
        &[
            "--repo",
            &repo,
            "--max-age",
            "26h",
            "--format",
            "prometheus",
        ],
    )
    .success();
    health.stdout_contains("ops_check_status{check=\"repo\"");
    health.stdout_contains(&repo);
    assert!(
        !keys(s3, &repo).iter().any(|k| k.starts_with(".ops-lock/")),
        "no lock object is left behind"
    );
}

#[test]
fn a_bucket_prefix_that_holds_something_else_is_not_made_a_repository() {
    let s3 = server();
    let bucket = s3.bucket("notrepo");
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("notes.txt");
    fs::write(&other, "not ours").unwrap();
    let put = s3.aws(&[
        "s3",
        "cp",
        other.to_str().unwrap(),
        &format!("s3://{bucket}/x/notes.txt"),
    ]);
    assert!(put.status.success());
    let data = tmp.path().join("data");
    sample_tree(&data);
    let repo = format!("s3://{bucket}/x");
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .fails_with(2)
    .stderr_contains("not an ops-snapshot repository");
    assert_eq!(keys(s3, &repo), ["notes.txt"], "nothing was written there");

    let missing = "s3://no-such-bucket-here/snaps";
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", missing],
    )
    .fails_with(1)
    .stderr_contains("we never create buckets");
}

/// Plants a lock object as another host's `ops-snapshot gc` would write it.
fn plant_lock(s3: &S3Server, repo: &str, exclusive: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("lock");
    let holder = serde_json::json!({
        "tool": "ops-snapshot gc (deleting)", "pid": 4242, "host": "elsewhere",
        "since": "2026-12-01T00:00:00Z", "exclusive": exclusive,
    });
    fs::write(&file, holder.to_string()).unwrap();
    let put = s3.aws(&[
        "s3",
        "cp",
        file.to_str().unwrap(),
        &format!("{repo}/.ops-lock/4242-1"),
    ]);
    assert!(put.status.success());
}

#[test]
fn a_lock_object_keeps_others_waiting_until_it_goes_stale() {
    let s3 = server();
    let repo = format!("s3://{}/locked", s3.bucket("locks"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();

    plant_lock(s3, &repo, true);
    let waited = tool(
        s3,
        "ops-snapshot",
        &[
            "create",
            data.to_str().unwrap(),
            "--repo",
            &repo,
            "--lock-wait",
            "2s",
        ],
    )
    .fails_with(1);
    waited.stderr_contains("is locked by ops-snapshot gc (deleting) (pid 4242 on elsewhere");
    let listed = tool(s3, "ops-snapshot", &["list", "--repo", &repo])
        .success()
        .records();
    assert_eq!(listed.len(), 1, "the waiting create stored no snapshot");

    // A shared holder (another host's create) does not keep a create out,
    // but keeps gc out.
    s3.aws(&["s3", "rm", "--recursive", &format!("{repo}/.ops-lock/")]);
    plant_lock(s3, &repo, false);
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();
    tool(
        s3,
        "ops-snapshot",
        &["gc", "--repo", &repo, "--lock-wait", "1s"],
    )
    .fails_with(1)
    .stderr_contains("is locked by");

    // Not refreshed for longer than OPS_LOCK_STALE: ignored, said, removed by gc.
    std::thread::sleep(Duration::from_secs(3));
    let gc = ops("ops-snapshot")
        .s3(s3)
        .env("OPS_LOCK_STALE", "2")
        .args(["gc", "--repo", &repo, "--lock-wait", "1s"])
        .run()
        .success();
    gc.stderr_contains("ignoring the stale lock");
    gc.stderr_contains("removing it");
    assert!(!keys(s3, &repo).iter().any(|k| k.starts_with(".ops-lock/")));
}

#[test]
fn a_long_run_keeps_its_lock_fresh() {
    let s3 = server();
    let repo = format!("s3://{}/fresh", s3.bucket("fresh"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("big.bin"), pseudo_random(8 << 20, 9)).unwrap();
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();
    // An export into a pipe nobody reads yet holds its lock as long as we
    // like: many times the stale time of 2 s.
    let mut export = Command::new(bin_dir().join("ops-snapshot"))
        .env("OPS_CACHE_DIR", test_cache())
        .env("OPS_LOCK_STALE", "2")
        .envs(s3.env())
        .args(["export", "latest", "--repo", &repo])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !keys(s3, &repo).iter().any(|k| k.starts_with(".ops-lock/")) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no lock object appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        export.try_wait().unwrap().is_none(),
        "the export waits for its reader"
    );
    ops("ops-snapshot")
        .s3(s3)
        .env("OPS_LOCK_STALE", "2")
        .args(["gc", "--repo", &repo, "--lock-wait", "0s"])
        .run()
        .fails_with(1)
        .stderr_contains("is locked by ops-snapshot");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut export.stdout.take().unwrap(), &mut tar).unwrap();
    assert!(export.wait().unwrap().success());
    assert!(
        tar.len() > 100_000,
        "the export went on: {} bytes",
        tar.len()
    );
}

#[test]
fn gc_while_snapshots_are_created_loses_nothing() {
    let s3 = server();
    let repo = format!("s3://{}/race", s3.bucket("race"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    many_small_files(&data, 400);
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();

    let spawn = |args: &[&str]| {
        Command::new(bin_dir().join("ops-snapshot"))
            .env("OPS_CACHE_DIR", test_cache())
            .envs(s3.env())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut overlapped = 0;
    for round in 0..6u64 {
        // Each round rewrites a quarter of the files and adds 8 MiB, so old
        // packs empty out and the create takes a moment.
        for i in (round as usize % 4..400).step_by(4) {
            let file = data.join(format!("d000/f{i}"));
            fs::write(&file, format!("round {round} file {i} {}", "y".repeat(i))).unwrap();
        }
        fs::write(data.join("bulk.bin"), pseudo_random(8 << 20, round)).unwrap();
        tool(s3, "ops-prune", &["--keep-last", "2", "--repo", &repo]).success();
        let create = spawn(&["create", data.to_str().unwrap(), "--repo", &repo]);
        let gc = spawn(&["gc", "--repo", &repo, "--max-unused", "0%"]);
        for child in [create, gc] {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            if stderr.contains("is locked by ops-snapshot create") {
                overlapped += 1;
            }
        }
    }
    assert!(
        overlapped > 0,
        "in no round did gc wait for a create: the race was not run"
    );
    let checked = tool(s3, "ops-verify", &["--repo", &repo, "--read-data"])
        .success()
        .records();
    assert!(
        checked.iter().all(|r| r["verify"]["ok"] == true),
        "{checked:?}"
    );
    let out = tmp.path().join("out");
    tool(
        s3,
        "ops-snapshot",
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .success();
    assert_same_tree(&data, &out);
}

#[test]
fn a_server_killed_mid_snapshot_leaves_no_snapshot_and_the_next_run_works() {
    let mut s3 = start();
    let repo = format!("s3://{}/killed", s3.bucket("killed"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("big.bin"), pseudo_random(500 << 20, 5)).unwrap();
    let create = Command::new(bin_dir().join("ops-snapshot"))
        .env("OPS_CACHE_DIR", test_cache())
        .envs(s3.env())
        .args(["create", data.to_str().unwrap(), "--repo", &repo])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !keys(&s3, &repo).iter().any(|k| k.starts_with("packs/")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no pack was stored"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s3.kill();
    let out = create.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "no snapshot record");
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer"));

    s3.restart();
    let listed = tool(&s3, "ops-snapshot", &["list", "--repo", &repo])
        .success()
        .records();
    assert!(listed.is_empty(), "{listed:?}");
    tool(
        &s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();
    tool(&s3, "ops-verify", &["--repo", &repo, "--read-data"]).success();
}

#[test]
fn a_tampered_pack_in_the_bucket_is_found_and_restores_nothing_outside() {
    let s3 = server();
    let repo = format!("s3://{}/tampered", s3.bucket("tamper"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();
    let pack = keys(s3, &repo)
        .into_iter()
        .find(|k| k.starts_with("packs/"))
        .unwrap();
    let local = tmp.path().join("pack");
    let url = format!("{repo}/{pack}");
    assert!(s3
        .aws(&["s3", "cp", &url, local.to_str().unwrap()])
        .status
        .success());
    let mut bytes = fs::read(&local).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&local, bytes).unwrap();
    assert!(s3
        .aws(&["s3", "cp", local.to_str().unwrap(), &url])
        .status
        .success());

    let checked = tool(s3, "ops-verify", &["--repo", &repo, "--read-data"]).fails_with(1);
    checked.stdout_contains("\"ok\":false");
    let out = tmp.path().join("out");
    tool(
        s3,
        "ops-snapshot",
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .fails_with(1);
    assert!(!out.exists(), "a failed restore leaves no target");
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "nothing beside the target either: {names:?}"
    );
}

#[test]
fn snapshots_copied_between_a_directory_and_a_bucket_move_only_what_is_missing() {
    let s3 = server();
    let remote = format!("s3://{}/copies", s3.bucket("copy"));
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("repo");
    let data = tmp.path().join("data");
    sample_tree(&data);
    fs::write(data.join("big.bin"), pseudo_random(10 << 20, 11)).unwrap();
    let snap = |repo: &Path| {
        tool(
            s3,
            "ops-snapshot",
            &[
                "create",
                data.to_str().unwrap(),
                "--repo",
                repo.to_str().unwrap(),
            ],
        )
        .success()
        .record()
    };
    let first = snap(&local);

    let copied = tool(
        s3,
        "ops-snapshot",
        &[
            "copy",
            "latest",
            "--repo",
            local.to_str().unwrap(),
            "--to",
            &remote,
        ],
    )
    .success()
    .record();
    assert_eq!(copied["id"], first["id"], "the copy keeps the id: {copied}");
    assert_eq!(copied["repo"], remote.as_str(), "{copied}");
    assert_eq!(copied["copied"], true, "{copied}");
    assert!(
        copied["copied_bytes"].as_u64().unwrap() > 10 << 20,
        "{copied}"
    );
    let stored = keys(s3, &remote);

    let again = tool(
        s3,
        "ops-snapshot",
        &[
            "copy",
            "latest",
            "--repo",
            local.to_str().unwrap(),
            "--to",
            &remote,
        ],
    )
    .success();
    again.stderr_contains("already; skipped");
    assert_eq!(again.record()["copied"], false);
    assert_eq!(keys(s3, &remote), stored, "a second copy writes nothing");

    fs::write(data.join("new.txt"), "one more file").unwrap();
    let second = snap(&local);
    let piped = ops("ops-snapshot")
        .s3(s3)
        .args(["list", "--repo", local.to_str().unwrap()])
        .run()
        .success();
    let both = ops("ops-snapshot")
        .s3(s3)
        .args(["copy", "--to", &remote])
        .stdin(piped.stdout)
        .run()
        .success()
        .records();
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0]["copied"], false, "{both:?}");
    assert_eq!(both[1]["id"], second["id"], "{both:?}");
    assert!(
        both[1]["copied_bytes"].as_u64().unwrap() < 1 << 20,
        "only the new chunks travel: {both:?}"
    );
    tool(s3, "ops-verify", &["--repo", &remote, "--read-data"]).success();
    let out = tmp.path().join("from-bucket");
    tool(
        s3,
        "ops-snapshot",
        &[
            "restore",
            "latest",
            "--repo",
            &remote,
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .success();
    assert_same_tree(&data, &out);

    // And back, into a new directory.
    let home = tmp.path().join("home-repo");
    let listed = tool(s3, "ops-snapshot", &["list", "--repo", &remote]).success();
    ops("ops-snapshot")
        .s3(s3)
        .args(["copy", "--to", home.to_str().unwrap()])
        .stdin(listed.stdout)
        .run()
        .success();
    let back = tmp.path().join("back");
    tool(
        s3,
        "ops-snapshot",
        &[
            "restore",
            &second["id"].as_str().unwrap()[..12],
            "--repo",
            home.to_str().unwrap(),
            "--to",
            back.to_str().unwrap(),
        ],
    )
    .success();
    assert_same_tree(&data, &back);
}

#[test]
fn a_gc_stopped_after_its_repack_leaves_nothing_for_the_next_one_to_lose() {
    let s3 = server();
    let repo = format!("s3://{}/regc", s3.bucket("regc"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    many_small_files(&data, 800);
    // The loss this guards against depends on the order packs are listed
    // in: each round is a fresh chance for it.
    for round in 0..5 {
        tool(
            s3,
            "ops-snapshot",
            &["create", data.to_str().unwrap(), "--repo", &repo],
        )
        .success();
        // Three quarters of the files change: old packs become mostly unused.
        for i in (0..800).filter(|i| i % 4 != round % 4) {
            let file = data.join(format!("d{:03}/f{i}", i / 500));
            fs::write(&file, format!("round {round} {i} {}", "z".repeat(i % 200))).unwrap();
        }
        tool(
            s3,
            "ops-snapshot",
            &["create", data.to_str().unwrap(), "--repo", &repo],
        )
        .success();
        tool(s3, "ops-prune", &["--keep-last", "1", "--repo", &repo]).success();
        // Another host's create holds the repository: this gc repacks, then
        // cannot delete.
        plant_lock(s3, &repo, false);
        tool(
            s3,
            "ops-snapshot",
            &[
                "gc",
                "--repo",
                &repo,
                "--max-unused",
                "0%",
                "--lock-wait",
                "1s",
            ],
        )
        .fails_with(1)
        .stderr_contains("is locked by");
        s3.aws(&["s3", "rm", "--recursive", &format!("{repo}/.ops-lock/")]);
        tool(
            s3,
            "ops-snapshot",
            &["gc", "--repo", &repo, "--max-unused", "0%"],
        )
        .success();
        let checked = tool(s3, "ops-verify", &["--repo", &repo, "--read-data"]);
        assert_eq!(
            checked.code, 0,
            "round {round}: {}\n{}",
            checked.stdout, checked.stderr
        );
    }
    let out = tmp.path().join("out");
    tool(
        s3,
        "ops-snapshot",
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            out.to_str().unwrap(),
        ],
    )
    .success();
    assert_same_tree(&data, &out);
}

#[test]
fn a_restore_from_a_bucket_fetches_each_pack_once() {
    use ops_tests::faults::Proxy;
    let s3 = server();
    let repo = format!("s3://{}/web01-snaps", s3.bucket("fetch-once"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    many_small_files(&data.join("many"), 2000);
    for i in 0..120 {
        fs::write(
            data.join(format!("part{i:03}.bin")),
            pseudo_random(300 << 10, i),
        )
        .unwrap();
    }
    for i in 0..3 {
        fs::write(
            data.join(format!("big{i}.bin")),
            pseudo_random(20 << 20, 1000 + i),
        )
        .unwrap();
    }
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();
    let packs = keys(s3, &repo)
        .iter()
        .filter(|key| key.starts_with("packs/"))
        .count();
    assert!(packs >= 5, "{packs} packs");

    let watched = Proxy::start(&s3.endpoint(), 0);
    let restored = tmp.path().join("restored");
    ops("ops-snapshot")
        .s3(s3)
        .env("AWS_ENDPOINT_URL", watched.endpoint())
        .args(["restore", "latest", "--repo", &repo, "--to"])
        .arg(&restored)
        .run()
        .success();
    assert_same_tree(&data, &restored);
    let fetched: Vec<String> = watched
        .requests()
        .into_iter()
        .filter(|line| {
            let target = line.split(' ').nth(1).unwrap_or_default();
            line.starts_with("GET ") && target.split('?').next().unwrap().contains("/packs/")
        })
        .collect();
    assert_eq!(fetched.len(), packs, "{fetched:#?}");
}

#[test]
fn a_restore_that_comes_back_to_an_early_pack_fetches_it_once() {
    use ops_tests::faults::Proxy;
    let s3 = server();
    let repo = format!("s3://{}/web01-snaps", s3.bucket("come-back"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let first = pseudo_random(2 << 20, 7);
    fs::write(data.join("a_first.bin"), &first).unwrap();
    for i in 0..8 {
        fs::write(
            data.join(format!("m{i}.bin")),
            pseudo_random(12 << 20, 100 + i),
        )
        .unwrap();
    }
    fs::write(data.join("z_first_again.bin"), &first).unwrap();
    tool(
        s3,
        "ops-snapshot",
        &["create", data.to_str().unwrap(), "--repo", &repo],
    )
    .success();

    let watched = Proxy::start(&s3.endpoint(), 0);
    let restored = tmp.path().join("restored");
    ops("ops-snapshot")
        .s3(s3)
        .env("AWS_ENDPOINT_URL", watched.endpoint())
        .args(["restore", "latest", "--repo", &repo, "--to"])
        .arg(&restored)
        .run()
        .success();
    assert_same_tree(&data, &restored);
    let mut fetched: Vec<String> = watched
        .requests()
        .into_iter()
        .filter(|line| line.starts_with("GET ") && line.contains("/packs/"))
        .collect();
    assert!(fetched.len() >= 6, "{fetched:#?}");
    let all = fetched.len();
    fetched.sort();
    fetched.dedup();
    assert_eq!(fetched.len(), all, "a pack was fetched twice");
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn an_encrypted_repository_in_a_bucket_shows_nothing_and_verifies_without_the_key() {
    let s3 = server();
    let repo = format!("s3://{}/sealed", s3.bucket("sealed"));
    let tmp = tempfile::tempdir().unwrap();
    let marker = "okapimarker";
    let data = tmp.path().join(format!("{marker}_src"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join(format!("{marker}.txt")), marker.repeat(5000)).unwrap();
    fs::write(data.join("big.bin"), pseudo_random(5 << 20, 9)).unwrap();
    let pass = tmp.path().join("repo.pass");
    fs::write(&pass, "a bucket passphrase\n").unwrap();
    fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let keyed = |args: &[&str]| {
        ops_tests::ops_keyless("ops-snapshot")
            .s3(s3)
            .env("OPS_PASSWORD_FILE", &pass)
            .args(args)
            .run()
    };
    keyed(&[
        "create",
        data.to_str().unwrap(),
        "--repo",
        &repo,
        "--encrypt",
    ])
    .success();
    let stored = keys(s3, &repo);
    assert!(stored.iter().any(|k| k.starts_with("keys/")), "{stored:?}");
    let mirror = tmp.path().join("mirror");
    let out = s3.aws(&["s3", "sync", &format!("{repo}/"), mirror.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for entry in walkdir::WalkDir::new(&mirror) {
        let entry = entry.unwrap();
        assert!(!entry.path().display().to_string().contains(marker));
        if entry.file_type().is_file() {
            let bytes = fs::read(entry.path()).unwrap();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} holds the marker",
                entry.path().display()
            );
        }
    }

    let target = tmp.path().join("restored");
    keyed(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        target.to_str().unwrap(),
    ])
    .success();
    assert_same_tree(&data, &target);
    let without = ops_tests::ops_keyless("ops-verify")
        .s3(s3)
        .args(["--read-data", "--repo", &repo])
        .run()
        .success();
    assert_eq!(without.record()["verify"]["level"], "quick");
    ops_tests::ops_keyless("ops-snapshot")
        .s3(s3)
        .args(["list", "--repo", &repo])
        .run()
        .fails_with(2)
        .stderr_contains("OPS_PASSWORD_FILE");
}
