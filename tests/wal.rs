//! The WAL archive with a real server: its archive_command runs `ops-backup
//! wal-push`, a recovery's restore_command runs `ops-backup wal-get`, into
//! a directory and into the S3 server; and what a hostile or unlucky
//! archive does to both.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ops_tests::pg::PgCluster;
use ops_tests::s3::{server, S3Server};
use ops_tests::{ops, pseudo_random};

const ARCHIVING: &str = "wal_level = replica\narchive_mode = on\narchive_timeout = 0";

/// Points the cluster's archive_command at `wal-push --to place`, with
/// `env` before it.
fn archive_into(cluster: &PgCluster, place: &str, env: &str) {
    let tool = cluster.tool("ops-backup");
    let command = format!("{env} {} wal-push %p --to {place}", tool.display());
    cluster.psql(
        "postgres",
        &format!("ALTER SYSTEM SET archive_command = '{command}'"),
    );
    cluster.psql("postgres", "SELECT pg_reload_conf()");
}

/// Writes a little, ends the segment; its name.
fn finish_segment(cluster: &PgCluster) -> String {
    cluster.psql(
        "postgres",
        "CREATE TABLE IF NOT EXISTS filler (n int); INSERT INTO filler SELECT generate_series(1, 1000)",
    );
    cluster.psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())")
}

/// Waits until the server reports `segment` archived.
fn wait_archived(cluster: &PgCluster, segment: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = cluster.psql("postgres", "SELECT last_archived_wal FROM pg_stat_archiver");
        if last.as_str() >= segment && !last.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{segment} not archived in time (last: {last:?}): {}",
            fs::read_to_string(cluster.dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stored(place: &Path, segment: &str) -> PathBuf {
    place
        .join("wal")
        .join(&segment[..16])
        .join(format!("{segment}.zst"))
}

fn wal_get(place: &str, name: &str, dest: &Path, s3: Option<&S3Server>) -> ops_tests::Outcome {
    let mut run = ops("ops-backup")
        .args(["wal-get", name])
        .arg(dest)
        .args(["--from", place]);
    if let Some(s3) = s3 {
        run = run.s3(s3);
    }
    run.run()
}

fn wal_push(place: &str, file: &Path, s3: Option<&S3Server>) -> ops_tests::Outcome {
    let mut run = ops("ops-backup")
        .arg("wal-push")
        .arg(file)
        .args(["--to", place]);
    if let Some(s3) = s3 {
        run = run.s3(s3);
    }
    run.run()
}

#[test]
fn every_segment_the_server_finishes_is_archived_and_comes_back_whole() {
    let cluster = PgCluster::start_with(ARCHIVING, &[]);
    let archive = cluster.private_dir("archive");
    archive_into(&cluster, archive.to_str().unwrap(), "");
    let first = finish_segment(&cluster);
    let second = finish_segment(&cluster);
    wait_archived(&cluster, &second);

    let tmp = tempfile::tempdir().unwrap();
    for segment in [&first, &second] {
        let original = fs::read(cluster.dir.join("data/pg_wal").join(segment)).unwrap();
        assert_eq!(original.len(), 16 << 20);
        let unpacked = Command::new("zstd")
            .arg("-dc")
            .arg(stored(&archive, segment))
            .output()
            .unwrap();
        assert!(unpacked.status.success(), "zstd -dc: {unpacked:?}");
        assert!(
            unpacked.stdout == original,
            "zstd -dc reads the segment back"
        );

        let dest = tmp.path().join("RECOVERYXLOG");
        wal_get(archive.to_str().unwrap(), segment, &dest, None).success();
        assert!(
            fs::read(&dest).unwrap() == original,
            "wal-get gives the segment back"
        );
    }

    let missing = tmp.path().join("missing");
    let out = wal_get(
        archive.to_str().unwrap(),
        "0000000100000000000000FF",
        &missing,
        None,
    )
    .fails_with(1);
    assert_eq!(out.stderr, "", "a segment the archive lacks is quiet");
    assert!(!missing.exists());
    let out = wal_get(
        archive.to_str().unwrap(),
        "00000002.history",
        &missing,
        None,
    )
    .fails_with(1);
    assert_eq!(out.stderr, "");
}

#[test]
fn the_same_segment_pushed_again_succeeds_and_other_content_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let place = tmp.path().join("backups");
    let name = "000000010000000000000007";
    let segment = tmp.path().join(name);
    fs::write(&segment, pseudo_random(16 << 20, 1)).unwrap();
    wal_push(place.to_str().unwrap(), &segment, None).success();
    let archived = fs::read(stored(&place, name)).unwrap();

    wal_push(place.to_str().unwrap(), &segment, None).success();
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join(name), pseudo_random(16 << 20, 2)).unwrap();
    wal_push(place.to_str().unwrap(), &other.join(name), None)
        .fails_with(1)
        .stderr_contains("different content")
        .stderr_contains("not overwritten");
    assert!(fs::read(stored(&place, name)).unwrap() == archived);

    let dest = tmp.path().join("back");
    wal_get(place.to_str().unwrap(), name, &dest, None).success();
    assert!(fs::read(&dest).unwrap() == fs::read(&segment).unwrap());
}

#[test]
fn a_damaged_segment_in_the_archive_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let place = tmp.path().join("backups");
    let name = "000000010000000000000009";
    let segment = tmp.path().join(name);
    let mut content = pseudo_random(8 << 20, 3);
    content.extend(std::iter::repeat_n(0u8, 8 << 20));
    fs::write(&segment, &content).unwrap();
    wal_push(place.to_str().unwrap(), &segment, None).success();
    let good = fs::read(stored(&place, name)).unwrap();

    let flipped = {
        let mut bytes = good.clone();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        bytes
    };
    let truncated = good[..good.len() - 1000].to_vec();
    let wrong_checksum = {
        let mut bytes = good.clone();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        bytes
    };
    let no_checksum = good[..good.len() - 40].to_vec();
    for (what, bytes) in [
        ("a flipped byte", flipped),
        ("truncated", truncated),
        ("a wrong checksum", wrong_checksum),
        ("no checksum", no_checksum),
    ] {
        fs::write(stored(&place, name), &bytes).unwrap();
        let dest = tmp.path().join("RECOVERYXLOG");
        wal_get(place.to_str().unwrap(), name, &dest, None)
            .fails_with(1)
            .stderr_contains("damaged");
        assert!(!dest.exists(), "{what}: nothing written");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "{what}: no temporary file left"
        );
    }
}

#[test]
fn names_that_are_not_wal_files_never_become_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let place = tmp.path().join("backups");
    fs::create_dir(&place).unwrap();
    let dest = tmp.path().join("dest");
    for name in [
        "../../etc/passwd",
        "000000010000000000000001/../x",
        "RECOVERYXLOG",
        "",
    ] {
        wal_get(place.to_str().unwrap(), name, &dest, None)
            .fails_with(1)
            .stderr_contains("not a WAL file name");
    }
    let passwd = tmp.path().join("passwd");
    fs::write(&passwd, "root:x:0:0").unwrap();
    wal_push(place.to_str().unwrap(), &passwd, None)
        .fails_with(1)
        .stderr_contains("not a WAL file name");
    assert_eq!(fs::read_dir(&place).unwrap().count(), 0);
    assert!(!dest.exists());
}

#[test]
fn a_link_in_the_archive_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let place = tmp.path().join("backups");
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir_all(&place).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, place.join("wal")).unwrap();
    let name = "000000010000000000000001";
    let segment = tmp.path().join(name);
    fs::write(&segment, pseudo_random(1 << 20, 4)).unwrap();
    wal_push(place.to_str().unwrap(), &segment, None)
        .fails_with(1)
        .stderr_contains("not a directory");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

    let linked = tmp.path().join("linked");
    fs::create_dir(&linked).unwrap();
    std::os::unix::fs::symlink(&segment, linked.join(name)).unwrap();
    wal_push(
        tmp.path().join("b2").to_str().unwrap(),
        &linked.join(name),
        None,
    )
    .fails_with(1);
}

#[test]
fn a_push_killed_mid_write_leaves_nothing_that_looks_archived() {
    let s3 = server();
    let tmp = tempfile::tempdir().unwrap();
    let name = "00000001000000000000000A";
    let segment = tmp.path().join(name);
    fs::write(&segment, pseudo_random(256 << 20, 5)).unwrap();
    let local = tmp.path().join("backups");
    let bucket = format!("s3://{}/pg", s3.bucket("killed-push"));
    for (place, on_s3) in [
        (local.to_str().unwrap().to_owned(), None),
        (bucket, Some(s3)),
    ] {
        let mut push = Command::new(ops_tests::bin_dir().join("ops-backup"));
        push.arg("wal-push")
            .arg(&segment)
            .args(["--to", &place])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(s3) = on_s3 {
            push.envs(s3.env());
        }
        let mut child = push.spawn().unwrap();
        let temp = stored(&local, name).with_extension("zst.ops-tmp");
        let deadline = Instant::now() + Duration::from_secs(10);
        while on_s3.is_none() && !temp.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if on_s3.is_some() {
            std::thread::sleep(Duration::from_millis(300));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "{place}: the push was killed, not finished"
        );

        let dest = tmp.path().join("RECOVERYXLOG");
        let out = wal_get(&place, name, &dest, on_s3).fails_with(1);
        assert_eq!(out.stderr, "", "{place}: nothing archived under the name");
        assert!(!dest.exists());
        if on_s3.is_none() {
            assert!(temp.exists(), "the killed push's temporary file");
            wal_push(&place, &segment, None)
                .fails_with(1)
                .stderr_contains("under way");
            let old =
                filetime::FileTime::from_unix_time(jiff::Timestamp::now().as_second() - 120, 0);
            filetime::set_file_mtime(&temp, old).unwrap();
        }
        wal_push(&place, &segment, on_s3).success();
        wal_get(&place, name, &dest, on_s3).success();
        assert!(
            fs::read(&dest).unwrap() == fs::read(&segment).unwrap(),
            "{place}"
        );
        fs::remove_file(&dest).unwrap();
    }
}

#[test]
fn archiving_into_a_bucket_and_into_one_that_cannot_be_reached() {
    let s3 = server();
    let place = format!("s3://{}/pg", s3.bucket("archive"));
    let env: Vec<String> = s3
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let cluster = PgCluster::start_with(ARCHIVING, &s3.env());
    archive_into(&cluster, &place, "");
    let segment = finish_segment(&cluster);
    wait_archived(&cluster, &segment);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("RECOVERYXLOG");
    wal_get(&place, &segment, &dest, Some(s3)).success();
    assert!(
        fs::read(&dest).unwrap()
            == fs::read(cluster.dir.join("data/pg_wal").join(&segment)).unwrap()
    );

    let unreachable = env
        .iter()
        .map(|pair| {
            if pair.starts_with("AWS_ENDPOINT_URL=") {
                "AWS_ENDPOINT_URL=http://127.0.0.1:9".to_owned()
            } else {
                pair.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    archive_into(&cluster, &place, &format!("env {unreachable}"));
    let failed_before: u64 = cluster
        .psql("postgres", "SELECT failed_count FROM pg_stat_archiver")
        .parse()
        .unwrap();
    let held = finish_segment(&cluster);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let failed: u64 = cluster
            .psql("postgres", "SELECT failed_count FROM pg_stat_archiver")
            .parse()
            .unwrap();
        if failed > failed_before {
            break;
        }
        assert!(Instant::now() < deadline, "archiving never failed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ready = cluster
        .dir
        .join("data/pg_wal/archive_status")
        .join(format!("{held}.ready"));
    assert!(ready.exists(), "the server keeps the segment to try again");
    assert!(cluster.dir.join("data/pg_wal").join(&held).exists());

    archive_into(&cluster, &place, "");
    wait_archived(&cluster, &held);
    wal_get(&place, &held, &dest, Some(s3)).success();
}

#[test]
fn a_base_backup_recovers_through_wal_get_to_a_second_and_no_further() {
    let cluster = PgCluster::start_with(ARCHIVING, &[]);
    let archive = cluster.private_dir("archive");
    archive_into(&cluster, archive.to_str().unwrap(), "");
    cluster.psql(
        "postgres",
        "CREATE TABLE marks (what text, at timestamptz DEFAULT now())",
    );
    cluster.psql(
        "postgres",
        "INSERT INTO marks (what) VALUES ('before the base backup')",
    );
    let base = cluster.private_dir("base").join("data");
    let out = cluster
        .as_postgres("pg_basebackup")
        .arg("-D")
        .arg(&base)
        .args(["-X", "none", "--checkpoint=fast", "-h"])
        .arg(&cluster.socket_dir)
        .args(["-p", &cluster.port.to_string(), "-U", "postgres"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_basebackup: {out:?}");
    cluster.psql("postgres", "INSERT INTO marks (what) VALUES ('the marker')");
    let target = cluster.psql("postgres", "SELECT clock_timestamp()");
    std::thread::sleep(Duration::from_millis(1100));
    cluster.psql(
        "postgres",
        "INSERT INTO marks (what) VALUES ('after the target')",
    );
    for _ in 0..3 {
        finish_segment(&cluster);
    }
    let last = finish_segment(&cluster);
    wait_archived(&cluster, &last);
    cluster.stop();

    fs::write(base.join("recovery.signal"), "").unwrap();
    let restore = format!(
        "archive_mode = off\nrestore_command = '{} wal-get %f %p --from {}'\n\
         recovery_target_time = '{target}'\nrecovery_target_action = 'promote'\n",
        cluster.tool("ops-backup").display(),
        archive.display()
    );
    let recovered = PgCluster::start_on_copy(&base, &restore);
    let deadline = Instant::now() + Duration::from_secs(60);
    while recovered.psql("postgres", "SELECT pg_is_in_recovery()") == "t" {
        assert!(Instant::now() < deadline, "recovery did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = recovered.psql("postgres", "SELECT what FROM marks ORDER BY at");
    assert_eq!(rows, "before the base backup\nthe marker");
    recovered.stop();
}
