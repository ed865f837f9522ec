//! PostgreSQL round trips through the real pipelines, against a throwaway
//! cluster: the schema and every table's content must come back identical,
//! and standard tools (zstd | psql, pg_restore) must restore our artifacts.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

use ops_tests::pg::cluster;
use ops_tests::{ops, sh};
use tempfile::tempdir;

#[test]
fn a_plain_dump_round_trips_schema_and_content_exactly() {
    let pg = cluster();
    pg.create_rich_db("rich_plain");
    let tmp = tempdir().unwrap();
    let verified = sh(&format!(
        "ops-backup create '{}' --to backups | ops-verify --restore-test",
        pg.url("rich_plain")
    ))
    .current_dir(tmp.path())
    .run()
    .success()
    .record();
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
    assert_eq!(verified["verify"]["level"], "restore");
    assert_eq!(verified["format"], "sql.zst");
    assert!(verified["path"].as_str().unwrap().ends_with(".sql.zst"));
    assert!(
        pg.databases_like("ops_verify_rich_plain").is_empty(),
        "scratch database left behind"
    );

    let restored = ops("ops-restore")
        .arg(verified["path"].as_str().unwrap())
        .arg("--to")
        .arg(pg.url("rich_plain_restored"))
        .current_dir(tmp.path())
        .run()
        .success()
        .record();
    assert_eq!(restored["restore"]["ok"], true, "{restored}");
    assert_eq!(pg.schema("rich_plain"), pg.schema("rich_plain_restored"));
    assert_eq!(
        pg.content_hashes("rich_plain"),
        pg.content_hashes("rich_plain_restored")
    );
    let sequence = "SELECT last_value, is_called FROM ticket_seq";
    assert_eq!(
        pg.psql("rich_plain_restored", sequence),
        pg.psql("rich_plain", sequence)
    );
    assert_eq!(pg.psql("rich_plain_restored", sequence), "123491789|t");

    pg.create_db("rich_by_psql");
    let artifact = tmp.path().join(verified["path"].as_str().unwrap());
    let by_psql = Command::new("bash")
        .arg("-o").arg("pipefail").arg("-c")
        .arg(format!(
            "zstd -dc '{}' | psql -X -q -v ON_ERROR_STOP=1 -o /dev/null -h '{}' -p {} -U postgres -d rich_by_psql",
            artifact.display(),
            pg.socket_dir.display(),
            pg.port
        ))
        .output()
        .unwrap();
    assert!(
        by_psql.status.success(),
        "{}",
        String::from_utf8_lossy(&by_psql.stderr)
    );
    assert_eq!(
        pg.content_hashes("rich_plain"),
        pg.content_hashes("rich_by_psql")
    );
}

#[test]
fn a_custom_dump_round_trips_and_pg_restore_reads_it_in_parallel() {
    let pg = cluster();
    pg.create_rich_db("rich_custom");
    let tmp = tempdir().unwrap();
    let record = ops("ops-backup")
        .args([
            "create",
            &pg.url("rich_custom"),
            "--to",
            "backups",
            "--format",
            "custom",
        ])
        .current_dir(tmp.path())
        .run()
        .success()
        .record();
    assert_eq!(record["format"], "dump");
    let artifact = tmp.path().join(record["path"].as_str().unwrap());
    let verified = ops("ops-verify")
        .arg(&artifact)
        .arg("--restore-test")
        .run()
        .success()
        .record();
    assert_eq!(verified["verify"]["level"], "restore");

    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(pg.url("rich_custom_restored"))
        .args(["--jobs", "2"])
        .run()
        .success();
    assert_eq!(pg.schema("rich_custom"), pg.schema("rich_custom_restored"));
    assert_eq!(
        pg.content_hashes("rich_custom"),
        pg.content_hashes("rich_custom_restored")
    );

    pg.create_db("rich_by_pg_restore");
    let by_pg_restore = Command::new("pg_restore")
        .args(["-j", "2", "--exit-on-error", "-h"])
        .arg(&pg.socket_dir)
        .args([
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "rich_by_pg_restore",
        ])
        .arg(&artifact)
        .output()
        .unwrap();
    assert!(
        by_pg_restore.status.success(),
        "{}",
        String::from_utf8_lossy(&by_pg_restore.stderr)
    );
    assert_eq!(
        pg.content_hashes("rich_custom"),
        pg.content_hashes("rich_by_pg_restore")
    );
}

#[test]
fn row_counts_describe_the_dump_exactly_while_rows_are_being_written() {
    let pg = cluster();
    pg.create_db("busy");
    pg.psql("busy", "CREATE TABLE t (id bigserial PRIMARY KEY, v text); INSERT INTO t(v) SELECT md5(g::text) FROM generate_series(1, 300000) g;");
    let writer = Command::new("psql")
        .args(["-X", "-q", "-h"])
        .arg(&pg.socket_dir)
        .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", "busy", "-c"])
        .arg("DO $$ BEGIN FOR i IN 1..400 LOOP INSERT INTO t(v) SELECT 'x' FROM generate_series(1, 500); COMMIT; PERFORM pg_sleep(0.005); END LOOP; END $$;")
        .spawn()
        .unwrap();
    let tmp = tempdir().unwrap();
    let record = ops("ops-backup")
        .args(["create", &pg.url("busy"), "--to"])
        .arg(tmp.path())
        .run()
        .success()
        .record();
    let mut writer = writer;
    writer.wait().unwrap();
    let manifest = std::fs::read_to_string(
        tmp.path()
            .join(format!("{}.manifest.jsonl", record["id"].as_str().unwrap())),
    )
    .unwrap();
    let rows: u64 = manifest
        .lines()
        .find(|l| l.contains("\"type\":\"table\""))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["rows"].as_u64())
        .unwrap();
    assert!(rows >= 300000, "{rows}");
    let verified = ops("ops-verify")
        .arg(record["path"].as_str().unwrap())
        .arg("--restore-test")
        .run()
        .success()
        .record();
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
}
