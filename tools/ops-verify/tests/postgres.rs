//! ops-verify on database dumps: quick and full checks, --restore-test,
//! per-table mismatches, failed restores and Ctrl-C, always dropping the
//! scratch database.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ops_backup::hashing::HashingWriter;
use ops_tests::ops;
use ops_tests::pg::cluster;
use serde_json::Value;
use tempfile::tempdir;

fn backup(db: &str, dir: &Path, format: &str) -> Value {
    ops("ops-backup")
        .args(["create", &cluster().url(db), "--format", format, "--to"])
        .arg(dir)
        .run()
        .success()
        .record()
}

fn manifest_path(record: &Value) -> PathBuf {
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    artifact.with_file_name(format!("{}.manifest.jsonl", record["id"].as_str().unwrap()))
}

/// Rewrites a manifest's lines and seals it again, as someone who
/// controls the backup directory could.
fn reseal(record: &Value, edit: impl Fn(&mut Value)) {
    let path = manifest_path(record);
    let text = fs::read_to_string(&path).unwrap();
    let mut body = String::new();
    for line in text.lines().filter(|l| !l.contains("\"type\":\"seal\"")) {
        let mut value: Value = serde_json::from_str(line).unwrap();
        edit(&mut value);
        body.push_str(&serde_json::to_string(&value).unwrap());
        body.push('\n');
    }
    let mut hashing = HashingWriter::new(std::io::sink());
    hashing.write_all(body.as_bytes()).unwrap();
    let (_, sha256, _) = hashing.finish();
    body.push_str(&format!("{{\"type\":\"seal\",\"sha256\":\"{sha256}\"}}\n"));
    fs::write(path, body).unwrap();
}

#[test]
fn dumps_verify_quick_and_full_and_damage_is_caught() {
    let pg = cluster();
    pg.create_db("vdb");
    pg.psql(
        "vdb",
        "CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 3000);",
    );
    let tmp = tempdir().unwrap();
    for format in ["plain", "custom"] {
        let record = backup("vdb", tmp.path(), format);
        let artifact = record["path"].as_str().unwrap();
        for level in ["quick", "full"] {
            let out = ops("ops-verify")
                .args([artifact, "--level", level])
                .run()
                .success()
                .record();
            assert_eq!(out["verify"]["level"], level);
        }
        let mut bytes = fs::read(artifact).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        fs::write(artifact, bytes).unwrap();
        let out = ops("ops-verify").arg(artifact).run().fails_with(1).record();
        assert!(
            out["verify"]["errors"]
                .to_string()
                .contains("checksum mismatch"),
            "{out}"
        );
    }
}

#[test]
fn a_plain_dump_without_its_end_marker_is_incomplete() {
    let pg = cluster();
    pg.create_db("markerdb");
    pg.psql(
        "markerdb",
        "CREATE TABLE a (id int); INSERT INTO a VALUES (1);",
    );
    let tmp = tempdir().unwrap();
    let record = backup("markerdb", tmp.path(), "plain");
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    let sql = Command::new("zstd")
        .arg("-dc")
        .arg(&artifact)
        .output()
        .unwrap()
        .stdout;
    let sql = String::from_utf8(sql).unwrap();
    let cut = &sql[..sql.find("-- PostgreSQL database dump complete").unwrap()];
    let mut zstd = Command::new("zstd")
        .args(["-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    zstd.stdin
        .take()
        .unwrap()
        .write_all(cut.as_bytes())
        .unwrap();
    let compressed = zstd.wait_with_output().unwrap().stdout;
    fs::write(&artifact, &compressed).unwrap();
    let mut hashing = HashingWriter::new(std::io::sink());
    hashing.write_all(&compressed).unwrap();
    let (_, sha256, bytes) = hashing.finish();
    fs::write(
        format!("{}.sha256", artifact.display()),
        format!(
            "{sha256}  {}\n",
            artifact.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    reseal(&record, |line| {
        if line["type"] == "summary" {
            line["sha256"] = Value::from(sha256.clone());
            line["bytes"] = Value::from(bytes);
            line["raw_bytes"] = Value::from(cut.len());
        }
    });
    let mut record = record.clone();
    record["sha256"] = Value::from(sha256.clone());
    let out = ops("ops-verify")
        .stdin(record.to_string())
        .run()
        .fails_with(1)
        .record();
    assert_eq!(
        out["verify"]["errors"],
        serde_json::json!(["dump is incomplete: no end-of-dump marker"]),
        "{out}"
    );
}

#[test]
fn restore_test_reports_every_table_whose_count_differs() {
    let pg = cluster();
    pg.create_db("countdb");
    pg.psql("countdb", "CREATE TABLE a (id int); CREATE TABLE b (id int); INSERT INTO a SELECT generate_series(1, 10); INSERT INTO b SELECT generate_series(1, 20);");
    let tmp = tempdir().unwrap();
    let record = backup("countdb", tmp.path(), "plain");
    reseal(&record, |line| {
        if line["type"] == "table" {
            line["rows"] = Value::from(line["rows"].as_u64().unwrap() + 1);
        }
    });
    let out = ops("ops-verify")
        .arg(record["path"].as_str().unwrap())
        .arg("--restore-test")
        .run()
        .fails_with(1)
        .record();
    assert_eq!(out["verify"]["level"], "restore");
    assert_eq!(
        out["verify"]["errors"],
        serde_json::json!([
            "public.a: 11 rows in the backup, 10 after restore",
            "public.b: 21 rows in the backup, 20 after restore"
        ])
    );
    assert!(pg.databases_like("ops_verify_countdb").is_empty());
}

#[test]
fn a_restore_that_fails_still_drops_the_scratch_database() {
    let pg = cluster();
    pg.psql(
        "postgres",
        "DROP ROLE IF EXISTS gone_role; CREATE ROLE gone_role",
    );
    pg.create_db("gonedb");
    pg.psql(
        "gonedb",
        "CREATE TABLE owned (id int); ALTER TABLE owned OWNER TO gone_role;",
    );
    let tmp = tempdir().unwrap();
    let record = backup("gonedb", tmp.path(), "plain");
    pg.psql("postgres", "DROP DATABASE gonedb WITH (FORCE)");
    pg.psql("postgres", "DROP ROLE gone_role");
    let out = ops("ops-verify")
        .arg(record["path"].as_str().unwrap())
        .arg("--restore-test")
        .run()
        .fails_with(1)
        .record();
    let errors = out["verify"]["errors"].to_string();
    assert!(
        errors.contains("restore failed") && errors.contains("gone_role"),
        "{errors}"
    );
    assert!(
        pg.databases_like("ops_verify_gonedb").is_empty(),
        "scratch database left behind"
    );
}

#[test]
fn ctrl_c_during_a_restore_test_drops_the_scratch_database() {
    let pg = cluster();
    pg.create_db("slowdb");
    pg.psql("slowdb", "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g; CREATE INDEX ON t (v);");
    let tmp = tempdir().unwrap();
    let record = backup("slowdb", tmp.path(), "plain");
    let child = Command::new(ops_tests::bin_dir().join("ops-verify"))
        .arg(record["path"].as_str().unwrap())
        .arg("--restore-test")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while pg.databases_like("ops_verify_slowdb").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no scratch database appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (status, stderr) = ops_tests::interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        pg.databases_like("ops_verify_slowdb").is_empty(),
        "scratch database left behind"
    );
}

#[test]
fn a_scratch_database_left_by_kill_9_is_dropped_by_the_next_restore_test_but_not_one_in_use() {
    let pg = cluster();
    pg.create_db("killeddb");
    pg.psql("killeddb", "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g; CREATE INDEX ON t (v);");
    pg.create_db("nextdb");
    pg.psql("nextdb", "CREATE TABLE t AS SELECT 1 AS id");
    // Named like a scratch database but not one: never touched.
    pg.create_db("ops_verify_lookalike_1_2");
    let tmp = tempdir().unwrap();
    let slow = backup("killeddb", tmp.path(), "plain");
    let next = backup("nextdb", tmp.path(), "plain");
    let start = |record: &Value| {
        Command::new(ops_tests::bin_dir().join("ops-verify"))
            .arg(record["path"].as_str().unwrap())
            .arg("--restore-test")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_for_scratch = |other_than: &[String]| -> String {
        let started = Instant::now();
        loop {
            if let Some(name) = pg
                .databases_like("ops_verify_killeddb")
                .into_iter()
                .find(|name| !other_than.contains(name))
            {
                return name;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no scratch database appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut killed = start(&slow);
    let stale = wait_for_scratch(&[]);
    std::thread::sleep(Duration::from_millis(300));
    killed.kill().unwrap();
    killed.wait().unwrap();
    // The next restore test drops it (its creator is gone) ...
    let running = start(&slow);
    let in_use = wait_for_scratch(std::slice::from_ref(&stale));
    let started = Instant::now();
    while pg.databases_like("ops_verify_killeddb").contains(&stale) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the stale scratch database {stale} is kept"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... and one still in use is not dropped by the next.
    ops("ops-verify")
        .arg(next["path"].as_str().unwrap())
        .arg("--restore-test")
        .run()
        .success();
    let left = pg.databases_like("ops_verify_");
    assert!(
        left.contains(&in_use),
        "a running test's database was dropped: {left:?}"
    );
    assert!(
        left.contains(&"ops_verify_lookalike_1_2".to_owned()),
        "{left:?}"
    );
    assert_eq!(ops_tests::interrupt(running).0.code(), Some(130));
    assert_eq!(
        pg.databases_like("ops_verify_killeddb"),
        Vec::<String>::new()
    );
}

/// What ops-verify kept beside the artifact.
fn history(record: &Value) -> Value {
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    let path = artifact.with_file_name(format!("{}.verify.json", record["id"].as_str().unwrap()));
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_restore_test_that_cannot_run_leaves_the_backup_verified_but_not_restore_tested() {
    let pg = cluster();
    pg.create_db("untested");
    pg.psql(
        "untested",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    );
    let tmp = tempdir().unwrap();
    let record = backup("untested", tmp.path(), "plain");
    let path = record["path"].as_str().unwrap();
    let wrong_password = pg.secret_url("postgres", "not-the-password");
    let unreachable = "postgres://postgres@127.0.0.1:1/postgres";
    for (server, path_var, says) in [
        (wrong_password.as_str(), None, "password"),
        (unreachable, None, "127.0.0.1:1"),
        (
            &pg.url("postgres")[..],
            Some("/nonexistent"),
            "psql not found",
        ),
    ] {
        let mut verify = ops("ops-verify")
            .arg(path)
            .arg(format!("--restore-test={server}"));
        if let Some(dirs) = path_var {
            verify = verify.env("PATH", dirs);
        }
        let out = verify.run().fails_with(1);
        assert!(
            out.stderr.contains("restore test could not run") && out.stderr.contains(says),
            "{server}: {}",
            out.stderr
        );
        out.stderr_lacks("not-the-password")
            .stdout_lacks("not-the-password");
        let verified = out.record();
        assert_eq!(verified["verify"]["ok"], true, "{server}: {verified}");
        assert_eq!(verified["verify"]["level"], "full");
        assert!(verified["verify"]["not_tested"]
            .as_str()
            .unwrap()
            .contains(says));
        assert!(verified["verify"]["duration_seconds"].as_f64().is_some());
        let kept = history(&record);
        assert_eq!(kept["verify"]["ok"], true, "nothing FAILED is kept: {kept}");
        assert!(kept["levels"].get("restore").is_none(), "{kept}");
        let health = ops("ops-health")
            .arg("--backups")
            .arg(tmp.path())
            .run()
            .success();
        assert_eq!(health.record()["status"], "ok", "{}", health.stdout);
    }
    assert!(pg.databases_like("ops_verify_untested").is_empty());
}

#[test]
fn each_level_keeps_its_latest_result_and_health_holds_restore_tests_to_a_time_budget() {
    let pg = cluster();
    pg.create_db("rto");
    pg.psql(
        "rto",
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000)",
    );
    let tmp = tempdir().unwrap();
    let dir = tmp.path();
    let record = backup("rto", dir, "custom");
    let path = record["path"].as_str().unwrap();
    let health = |extra: &[&str]| {
        ops("ops-health")
            .arg("--backups")
            .arg(dir)
            .args(extra)
            .run()
    };
    let never = health(&["--max-restore-time", "1h"]).fails_with(2).record();
    assert!(
        never["message"]
            .as_str()
            .unwrap()
            .contains("never restore-tested"),
        "{never}"
    );

    let tested = ops("ops-verify")
        .arg(path)
        .arg("--restore-test")
        .run()
        .success()
        .record();
    let restore = tested["verify"]["restore_seconds"].as_f64().unwrap();
    let total = tested["verify"]["duration_seconds"].as_f64().unwrap();
    assert!(restore > 0.0 && total >= restore, "{tested}");
    ops("ops-verify")
        .arg(path)
        .args(["--level", "quick"])
        .run()
        .success();
    let kept = history(&record);
    assert_eq!(kept["verify"]["level"], "quick", "the latest: {kept}");
    assert_eq!(kept["levels"]["restore"]["restore_seconds"], restore);
    assert_eq!(kept["levels"]["quick"]["ok"], true);

    let within = health(&["--max-restore-time", "4h"]).success().record();
    assert!(
        within["message"]
            .as_str()
            .unwrap()
            .contains("restore tested at"),
        "{within}"
    );
    assert_eq!(within["metrics"]["restore_test_duration_seconds"], restore);
    let over = health(&["--max-restore-time", "1ms"])
        .fails_with(1)
        .record();
    assert_eq!(over["status"], "warn");
    assert!(
        over["message"]
            .as_str()
            .unwrap()
            .contains("longer than --max-restore-time 1ms"),
        "{over}"
    );
    let stale = health(&["--max-restore-time", "4h", "--max-age", "1h"]);
    assert_eq!(
        stale.code, 0,
        "the backup and its test are fresh: {}",
        stale.stdout
    );

    let prometheus = health(&["--format", "prometheus"]).success().stdout;
    for family in [
        "ops_restore_test_duration_seconds{name=\"rto\"",
        "ops_restore_test_timestamp_seconds{name=\"rto\"",
    ] {
        assert!(prometheus.contains(family), "{family}: {prometheus}");
    }
}

#[test]
fn a_verify_result_written_by_an_older_ops_verify_is_still_read() {
    let pg = cluster();
    pg.create_db("oldformat");
    let tmp = tempdir().unwrap();
    let record = backup("oldformat", tmp.path(), "plain");
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    let kept = artifact.with_file_name(format!("{}.verify.json", record["id"].as_str().unwrap()));
    fs::write(
        &kept,
        format!(
            r#"{{"sha256":"{}","verify":{{"ok":true,"level":"restore","time":"2026-11-01T00:00:00Z","errors":[]}}}}"#,
            record["sha256"].as_str().unwrap()
        ),
    )
    .unwrap();
    let listed = ops("ops-backup")
        .arg("list")
        .arg(tmp.path())
        .run()
        .success()
        .record();
    assert_eq!(listed["verify"]["level"], "restore", "{listed}");
    let health = ops("ops-health")
        .arg("--backups")
        .arg(tmp.path())
        .args(["--max-restore-time", "1h", "--max-age", "100000h"])
        .run()
        .fails_with(1)
        .record();
    assert!(
        health["message"]
            .as_str()
            .unwrap()
            .contains("recorded no duration"),
        "{health}"
    );
    ops("ops-verify")
        .arg(&artifact)
        .args(["--level", "quick"])
        .run()
        .success();
    let merged: Value = serde_json::from_str(&fs::read_to_string(&kept).unwrap()).unwrap();
    assert_eq!(
        merged["levels"]["restore"]["time"], "2026-11-01T00:00:00Z",
        "{merged}"
    );
    assert_eq!(merged["levels"]["quick"]["ok"], true);
}
