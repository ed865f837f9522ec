//! Backups in a bucket, as a new user would keep them there: every tool on
//! `s3://BUCKET/PREFIX`, against a real SeaweedFS on 127.0.0.1, with the
//! AWS CLI, tar and sha256sum reading what we wrote; and the faults a
//! remote store adds (wrong credentials, no bucket, no server, a server
//! killed mid-upload, tampered objects), each leaving nothing that lists
//! as a backup.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ops_tests::pg::cluster;
use ops_tests::s3::{server, start, S3Server};
use ops_tests::{assert_same_tree, ops, pseudo_random, sample_tree, Outcome};

fn tool(s3: &S3Server, name: &str, args: &[&str]) -> Outcome {
    ops(name).s3(s3).args(args).run()
}

fn aws_ok(s3: &S3Server, args: &[&str]) -> String {
    let out = s3.aws(args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keys(s3: &S3Server, place: &str) -> Vec<String> {
    let listed = aws_ok(s3, &["s3", "ls", &format!("{place}/")]);
    listed
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

#[test]
fn a_directory_backed_up_to_a_bucket_lists_verifies_restores_and_prunes() {
    let s3 = server();
    let place = format!("s3://{}/web01", s3.bucket("backups"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    fs::write(data.join("big.bin"), pseudo_random(20 << 20, 7)).unwrap();

    let created = tool(
        s3,
        "ops-backup",
        &["create", data.to_str().unwrap(), "--to", &place],
    )
    .success()
    .record();
    let artifact = created["path"].as_str().unwrap().to_owned();
    assert!(artifact.starts_with(&format!("{place}/data_")), "{created}");
    assert!(artifact.ends_with(".tar.zst"), "{created}");
    let stored = keys(s3, &place);
    assert_eq!(
        stored.len(),
        3,
        "artifact, checksum file, manifest: {stored:?}"
    );

    let listed = tool(s3, "ops-backup", &["list", &place])
        .success()
        .records();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["sha256"], created["sha256"]);

    let verified = tool(s3, "ops-verify", &[&place]).success().record();
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
    assert_eq!(verified["verify"]["level"], "full", "{verified}");
    let again = tool(s3, "ops-backup", &["list", &place]).success().record();
    assert_eq!(
        again["verify"]["ok"], true,
        "the verification is kept in the bucket"
    );

    let target = tmp.path().join("restored");
    tool(
        s3,
        "ops-restore",
        &[&artifact, "--to", target.to_str().unwrap()],
    )
    .success();
    assert_same_tree(&data, &target);

    // Standard tools read what is in the bucket.
    let name = artifact.rsplit('/').next().unwrap();
    let download = tmp.path().join("download");
    fs::create_dir(&download).unwrap();
    aws_ok(
        s3,
        &[
            "s3",
            "cp",
            &format!("{place}/"),
            download.to_str().unwrap(),
            "--recursive",
        ],
    );
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg(format!("{name}.sha256"))
        .current_dir(&download)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let listing = Command::new("tar")
        .args(["--zstd", "-tf", name])
        .current_dir(&download)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("big.bin"));

    std::thread::sleep(Duration::from_millis(1100));
    let second = tool(
        s3,
        "ops-backup",
        &["create", data.to_str().unwrap(), "--to", &place],
    )
    .success()
    .stdout;
    let pruned = ops("ops-prune")
        .s3(s3)
        .args(["--keep-last", "1", &place])
        .stdin(second)
        .run()
        .success();
    let removed: Vec<_> = pruned
        .records()
        .into_iter()
        .filter(|r| r["prune"]["action"] == "remove" && r["prune"]["done"] == true)
        .collect();
    assert_eq!(removed.len(), 1, "{:?}", pruned.records());
    assert_eq!(removed[0]["id"], created["id"]);
    let left = keys(s3, &place);
    assert!(
        left.iter()
            .all(|key| !key.starts_with(created["id"].as_str().unwrap())),
        "the pruned backup's objects are gone: {left:?}"
    );
    assert_eq!(
        tool(s3, "ops-backup", &["list", &place])
            .success()
            .records()
            .len(),
        1
    );
}

#[test]
fn copies_go_off_site_and_back_checked_and_only_once() {
    let s3 = server();
    let place = format!("s3://{}/web01", s3.bucket("copies"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let local = tmp.path().join("backups");
    let made = ops("ops-backup")
        .args([
            "create",
            data.to_str().unwrap(),
            "--to",
            local.to_str().unwrap(),
        ])
        .run()
        .success()
        .record();
    let listed = ops("ops-backup")
        .args(["list", local.to_str().unwrap()])
        .run()
        .success()
        .stdout;

    let up = ops("ops-backup")
        .s3(s3)
        .args(["copy", "--to", &place])
        .stdin(listed.clone())
        .run()
        .success();
    let copied = up.record();
    assert_eq!(
        copied["path"].as_str().unwrap(),
        format!("{place}/{}.tar.zst", made["id"].as_str().unwrap())
    );
    assert_eq!(copied["sha256"], made["sha256"]);
    up.stderr_contains("copied 1 backup(s)");
    let again = ops("ops-backup")
        .s3(s3)
        .args(["copy", "--to", &place])
        .stdin(listed)
        .run()
        .success();
    again
        .stderr_contains("copied 0 backup(s)")
        .stderr_contains("1 already there");
    assert_eq!(again.record()["path"], copied["path"]);

    // The seeds' backups-download-latest: the newest backup in the bucket, home again.
    let newest = tool(s3, "ops-backup", &["list", &place]).success().stdout;
    let home = tmp.path().join("home");
    let down = ops("ops-backup")
        .s3(s3)
        .args(["copy", "--to", home.to_str().unwrap()])
        .stdin(newest)
        .run()
        .success()
        .record();
    let verified = ops("ops-verify")
        .stdin(down.to_string())
        .run()
        .success()
        .record();
    assert_eq!(verified["verify"]["ok"], true, "{verified}");

    // A copy whose bytes are not the manifest's is refused and commits nothing.
    let artifact = copied["path"].as_str().unwrap();
    let tampered = tmp.path().join("tampered");
    fs::write(&tampered, b"not the backup").unwrap();
    aws_ok(s3, &["s3", "cp", tampered.to_str().unwrap(), artifact]);
    let elsewhere = tmp.path().join("elsewhere");
    let out = ops("ops-backup")
        .s3(s3)
        .args(["copy", "--to", elsewhere.to_str().unwrap()])
        .stdin(copied.to_string())
        .run()
        .fails_with(1);
    out.stderr_contains("damaged");
    let left = ops_tests::names(&elsewhere);
    assert!(
        left.iter()
            .all(|n| !n.ends_with(".manifest.jsonl") && !n.ends_with(".tar.zst")),
        "{left:?}"
    );
    let checked = tool(s3, "ops-verify", &[&place]).fails_with(1).record();
    assert_eq!(checked["verify"]["ok"], false, "{checked}");
}

#[test]
fn a_database_dump_streams_into_the_bucket_and_restore_tests_from_it() {
    let s3 = server();
    let pg = cluster();
    pg.create_db("offsite_shop");
    pg.psql(
        "offsite_shop",
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 5000) g;",
    );
    let place = format!("s3://{}/db", s3.bucket("dumps"));
    let made = tool(
        s3,
        "ops-backup",
        &["create", &pg.url("offsite_shop"), "--to", &place],
    )
    .success()
    .record();
    assert!(
        made["path"].as_str().unwrap().ends_with(".sql.zst"),
        "{made}"
    );
    let tested = ops("ops-verify")
        .s3(s3)
        .arg("--restore-test")
        .stdin(made.to_string())
        .run()
        .success()
        .record();
    assert_eq!(tested["verify"]["level"], "restore", "{tested}");
    assert_eq!(tested["verify"]["ok"], true, "{tested}");

    // pg_dump's custom format: pg_restore reads it from the bucket on its stdin.
    let custom = tool(
        s3,
        "ops-backup",
        &[
            "create",
            &pg.url("offsite_shop"),
            "--to",
            &place,
            "--format",
            "custom",
        ],
    )
    .success()
    .record();
    assert!(
        custom["path"].as_str().unwrap().ends_with(".dump"),
        "{custom}"
    );
    let full = ops("ops-verify")
        .s3(s3)
        .stdin(custom.to_string())
        .run()
        .success()
        .record();
    assert_eq!(full["verify"]["ok"], true, "{full}");
    let tested = ops("ops-verify")
        .s3(s3)
        .arg("--restore-test")
        .stdin(custom.to_string())
        .run()
        .success()
        .record();
    assert_eq!(tested["verify"]["level"], "restore", "{tested}");
    assert_eq!(tested["verify"]["ok"], true, "{tested}");
}

#[test]
fn health_reads_a_bucket_and_says_what_is_wrong_with_it() {
    let s3 = server();
    let place = format!("s3://{}/web01", s3.bucket("health"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    tool(
        s3,
        "ops-backup",
        &["create", data.to_str().unwrap(), "--to", &place],
    )
    .success();
    let healthy = tool(
        s3,
        "ops-health",
        &[
            "--backups",
            &place,
            "--max-age",
            "26h",
            "--format",
            "prometheus",
        ],
    )
    .success();
    healthy.stdout_contains(&format!("target=\"{place}\""));
    let missing = tool(
        s3,
        "ops-health",
        &["--backups", "s3://no-such-bucket-here/x"],
    )
    .fails_with(2);
    missing.stdout_contains("does not exist");
}

#[test]
fn a_secret_never_shows_and_bad_credentials_or_buckets_say_so() {
    let s3 = server();
    let bucket = s3.bucket("secrets");
    let place = format!("s3://{bucket}/web01");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let mut seen = String::new();
    for out in [
        tool(
            s3,
            "ops-backup",
            &["create", data.to_str().unwrap(), "--to", &place],
        )
        .success(),
        tool(s3, "ops-backup", &["list", &place, "--human"]).success(),
        tool(s3, "ops-verify", &[&place, "--human"]).success(),
        tool(s3, "ops-health", &["--backups", &place]).success(),
    ] {
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
    }
    let wrong = ops("ops-backup")
        .s3(s3)
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret")
        .args(["list", &place])
        .run()
        .fails_with(1);
    wrong
        .stderr_contains("access denied")
        .stderr_contains("AWS_SECRET_ACCESS_KEY");
    seen.push_str(&wrong.stderr);
    let no_bucket = tool(
        s3,
        "ops-backup",
        &[
            "create",
            data.to_str().unwrap(),
            "--to",
            "s3://never-made-bucket/x",
        ],
    )
    .fails_with(1);
    no_bucket
        .stderr_contains("bucket never-made-bucket does not exist")
        .stderr_contains("aws s3 mb");
    seen.push_str(&no_bucket.stderr);
    let buckets = aws_ok(s3, &["s3", "ls"]);
    assert!(
        !buckets.contains("never-made-bucket"),
        "a bucket was created: {buckets}"
    );
    let download = tmp.path().join("objects");
    aws_ok(
        s3,
        &[
            "s3",
            "cp",
            &format!("s3://{bucket}/"),
            download.to_str().unwrap(),
            "--recursive",
        ],
    );
    for name in ops_tests::names(&download.join("web01")) {
        seen.push_str(&String::from_utf8_lossy(
            &fs::read(download.join("web01").join(&name)).unwrap(),
        ));
        seen.push_str(&name);
    }
    assert!(!seen.contains(&s3.secret_key), "the secret leaked");
    assert!(seen.contains("web01"), "the outputs were collected");
}

#[test]
fn a_server_that_goes_away_fails_cleanly_and_the_next_run_works() {
    let mut s3 = start();
    let place = format!("s3://{}/web01", s3.bucket("faults"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    for n in 0..6 {
        fs::write(data.join(format!("random{n}")), pseudo_random(24 << 20, n)).unwrap();
    }

    // Killed mid-upload: a clear error, exit 1, and nothing that lists.
    let child = Command::new(ops_tests::bin_dir().join("ops-backup"))
        .args(["create", data.to_str().unwrap(), "--to", &place])
        .envs(s3.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    s3.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not answer"), "{stderr}");
    assert!(stderr.contains("AWS_ENDPOINT_URL"), "{stderr}");
    assert!(out.stdout.is_empty(), "no record for a failed backup");

    // Down: every tool says so and exits non-zero.
    let down = tool(&s3, "ops-backup", &["list", &place]).fails_with(1);
    down.stderr_contains("did not answer");

    s3.restart();
    let listed = tool(&s3, "ops-backup", &["list", &place]);
    assert!(listed.records().is_empty(), "{listed:?}");
    tool(
        &s3,
        "ops-backup",
        &["create", data.to_str().unwrap(), "--to", &place],
    )
    .success();
    assert_eq!(
        tool(&s3, "ops-verify", &[&place]).success().records().len(),
        1
    );

    // A server back within the retries' patience is no failure.
    s3.kill();
    let started = Instant::now();
    let waiting = Command::new(ops_tests::bin_dir().join("ops-backup"))
        .args(["list", &place])
        .envs(s3.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s3.restart();
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "list after a restart of {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn names_in_a_bucket_or_a_record_cannot_reach_outside_their_place() {
    let s3 = server();
    let bucket = s3.bucket("hostile");
    for bad in [
        format!("s3://{bucket}/../other"),
        format!("s3://{bucket}/a//b"),
        "s3://UPPER/x".to_owned(),
    ] {
        let out = tool(s3, "ops-backup", &["list", &bad]).fails_with(1);
        out.stderr_contains(&bad);
    }
    // A record whose path leaves its place is refused before anything is read.
    let record = format!(
        r#"{{"type":"backup","v":1,"id":"data_20261201_120000","name":"data","time":"2026-12-01T12:00:00Z","path":"s3://{bucket}/x/../../etc/data_20261201_120000.tar.zst","source":{{"kind":"dir","location":"/d"}},"format":"tar.zst","mode":"full","parent":null,"bytes":1,"sha256":"00"}}"#
    );
    let out = ops("ops-verify").s3(s3).stdin(record).run();
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.record()["verify"]["ok"], false, "{out:?}");
    out.stderr_contains("'..'");
}

fn repo_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn the_nightly_script_ships_each_verified_backup_off_site_and_make_fetches_the_newest() {
    let s3 = server();
    let offsite = format!("s3://{}/web01", s3.bucket("nightly"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let backups = tmp.path().join("backups");
    let nightly = || {
        let out = Command::new(repo_file("scripts/backup.sh"))
            .env("OPS_BIN", ops_tests::bin_dir())
            .envs(s3.env())
            .env("BACKUP_DIR", &backups)
            .env("DATA_DIRS", &data)
            .env("OFFSITE", &offsite)
            .env("KEEP", "1")
            // This machine's own disk may be fuller than the default 80%.
            .env("DISK_WARN", "100%")
            .env("DISK_CRIT", "100%")
            .env_remove("DATABASE_URL")
            .env_remove("RECORDS")
            .env_remove("PROM_FILE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "backup.sh: {stderr}");
        assert!(stderr.contains(&format!("copied to {offsite}")), "{stderr}");
    };
    nightly();
    std::thread::sleep(Duration::from_millis(1100));
    nightly();
    let there = tool(s3, "ops-backup", &["list", &offsite])
        .success()
        .records();
    assert_eq!(there.len(), 1, "KEEP=1 off-site too: {there:?}");
    let here = ops("ops-backup")
        .args(["list", backups.to_str().unwrap()])
        .run()
        .success()
        .record();
    assert_eq!(there[0]["sha256"], here["sha256"]);

    let downloads = tmp.path().join("downloads");
    let out = Command::new("make")
        .arg("-C")
        .arg(repo_file(""))
        .arg("backups-download-latest")
        .arg(format!("OPS_BIN={}", ops_tests::bin_dir().display()))
        .arg(format!("OFFSITE={offsite}"))
        .arg(format!("DOWNLOAD_DIR={}", downloads.display()))
        .envs(s3.env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let fetched = ops("ops-verify").arg(&downloads).run().success().record();
    assert_eq!(fetched["id"], there[0]["id"]);
    assert_eq!(fetched["verify"]["ok"], true);
}

#[test]
fn a_server_answering_503_for_a_while_is_retried_and_one_that_keeps_on_is_given_up() {
    use ops_tests::faults::Proxy;
    let s3 = server();
    let bucket = s3.bucket("slowdown");
    let place = format!("s3://{bucket}/web01");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);

    let unwell = Proxy::start(&s3.endpoint(), 3);
    let created = ops("ops-backup")
        .s3(s3)
        .env("AWS_ENDPOINT_URL", unwell.endpoint())
        .args(["create", data.to_str().unwrap(), "--to", &place])
        .run()
        .success()
        .record();
    assert_eq!(unwell.refused(), 3, "the first three requests were refused");
    tool(s3, "ops-verify", &[created["path"].as_str().unwrap()]).success();

    let down = Proxy::start(&s3.endpoint(), usize::MAX);
    let started = Instant::now();
    let listed = ops("ops-backup")
        .s3(s3)
        .env("AWS_ENDPOINT_URL", down.endpoint())
        .args(["list", &place])
        .run()
        .fails_with(1);
    listed.stderr_contains("did not answer or kept failing");
    listed.stderr_contains(&down.endpoint());
    assert!(
        (2..=60).contains(&started.elapsed().as_secs()),
        "retried with backoff, then given up: {:?}, {} requests",
        started.elapsed(),
        down.refused()
    );
    assert!(down.refused() >= 5, "{} requests", down.refused());
}

#[test]
fn an_upload_killed_midway_is_reported_and_aborted_by_fix() {
    let s3 = server();
    let place = format!("s3://{}/web01", s3.bucket("killed-upload"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("big.bin"), pseudo_random(300 << 20, 17)).unwrap();
    // Its lock object records the stale time of its writer, so the killed
    // run is given a short one.
    let mut create = Command::new(ops_tests::bin_dir().join("ops-backup"))
        .envs(s3.env())
        .env("OPS_LOCK_STALE", "2")
        .args(["create", data.to_str().unwrap(), "--to", &place])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bucket = place
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let uploads = || {
        aws_ok(
            s3,
            &["s3api", "list-multipart-uploads", "--bucket", &bucket],
        )
    };
    let started = Instant::now();
    while !uploads().contains("UploadId") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no upload began"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    create.kill().unwrap();
    create.wait().unwrap();

    let listed = tool(s3, "ops-backup", &["list", &place]).success();
    listed.stderr_contains("an upload that never finished");
    assert!(listed.records().is_empty(), "{}", listed.stdout);
    let health = tool(s3, "ops-health", &["--backups", &place, "--max-age", "1h"]);
    assert_ne!(health.code, 0);
    health.stdout_contains("\"unfinished_uploads\":1.0");
    // The killed run's lock object keeps --fix away until it goes stale.
    let held = tool(
        s3,
        "ops-health",
        &["--backups", &place, "--max-age", "1h", "--fix"],
    );
    held.stdout_contains("leftovers not touched");
    held.stdout_contains("is locked by ops-backup");
    std::thread::sleep(Duration::from_secs(3));
    let fix = |age: &str| {
        ops("ops-health")
            .s3(s3)
            .env("OPS_LOCK_STALE", "2")
            .args([
                "--backups",
                &place,
                "--max-age",
                "1h",
                "--fix",
                "--leftover-age",
                age,
            ])
            .run()
    };
    let young = fix("1h");
    young.stdout_lacks("\"check\":\"fix\"");
    young.stderr_contains("ignoring the stale lock");
    assert!(
        uploads().contains("UploadId"),
        "a young upload is left alone"
    );
    let fixed = fix("0s");
    fixed.stdout_contains("removed an upload that never finished");
    assert!(!uploads().contains("UploadId"), "{}", uploads());
    tool(s3, "ops-backup", &["list", &place])
        .success()
        .stderr_lacks("never finished");
}
