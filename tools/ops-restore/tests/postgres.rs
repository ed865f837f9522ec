//! ops-restore into a database: created when missing, refused when it holds
//! tables unless --clean (confirmed), all or nothing, counts compared.
#![allow(clippy::unwrap_used, clippy::panic)]

use ops_tests::pg::cluster;
use ops_tests::{ops, sample_tree};
use serde_json::Value;
use tempfile::{tempdir, TempDir};

fn dumped(db: &str, format: &str) -> (TempDir, String) {
    let pg = cluster();
    pg.create_db(db);
    pg.psql(db, "CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 4000) g;");
    let tmp = tempdir().unwrap();
    let record = ops("ops-backup")
        .args(["create", &pg.url(db), "--format", format, "--to"])
        .arg(tmp.path())
        .run()
        .success()
        .record();
    (tmp, record["path"].as_str().unwrap().to_owned())
}

#[test]
fn a_dump_restores_into_a_new_database_and_counts_are_compared() {
    let pg = cluster();
    for format in ["plain", "custom"] {
        let (_tmp, artifact) = dumped(&format!("src_{format}"), format);
        let target = format!("dst_{format}");
        let out: Value = ops("ops-restore")
            .arg(&artifact)
            .arg("--to")
            .arg(pg.url(&target))
            .run()
            .success()
            .record();
        assert_eq!(out["restore"]["ok"], true);
        assert_eq!(out["restore"]["tables"], 1);
        assert_eq!(out["restore"]["mismatches"], serde_json::json!([]));
        assert!(out["restore"]["to"].as_str().unwrap().contains(&target));
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man/ops.7"),
        )
        .unwrap();
        for field in out["restore"].as_object().unwrap().keys() {
            assert!(
                page.contains(&format!("\"{field}\"")),
                "ops(7) does not name the restore field {field}"
            );
        }
        assert_eq!(
            pg.psql(&target, "SELECT count(*), sum(total) FROM orders"),
            "4000|12003000.0"
        );
    }
}

#[test]
fn a_database_with_tables_is_replaced_only_with_clean_and_yes() {
    let pg = cluster();
    let (_tmp, artifact) = dumped("src_clean", "plain");
    pg.create_db("dst_clean");
    pg.psql(
        "dst_clean",
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42);",
    );
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(pg.url("dst_clean"))
        .run()
        .fails_with(1);
    out.stderr_contains("already has 1 table(s); pass --clean");
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(pg.url("dst_clean"))
        .arg("--clean")
        .run()
        .fails_with(1);
    out.stderr_contains("pass --yes to confirm");
    assert_eq!(pg.psql("dst_clean", "SELECT x FROM precious"), "42");
    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(pg.url("dst_clean"))
        .args(["--clean", "--yes"])
        .run()
        .success();
    assert_eq!(
        pg.psql(
            "dst_clean",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'precious'"
        ),
        "0"
    );
    assert_eq!(pg.psql("dst_clean", "SELECT count(*) FROM orders"), "4000");
    let empty = "dst_empty";
    pg.create_db(empty);
    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(pg.url(empty))
        .run()
        .success();
}

#[test]
fn a_failed_restore_leaves_no_database_behind() {
    let pg = cluster();
    pg.psql(
        "postgres",
        "DROP ROLE IF EXISTS vanished; CREATE ROLE vanished",
    );
    pg.create_db("src_fail");
    pg.psql(
        "src_fail",
        "CREATE TABLE a (id int); INSERT INTO a VALUES (1); ALTER TABLE a OWNER TO vanished;",
    );
    let tmp = tempdir().unwrap();
    let record = ops("ops-backup")
        .args(["create", &pg.url("src_fail"), "--to"])
        .arg(tmp.path())
        .run()
        .success()
        .record();
    pg.psql("postgres", "DROP DATABASE src_fail WITH (FORCE)");
    pg.psql("postgres", "DROP ROLE vanished");
    let out = ops("ops-restore")
        .arg(record["path"].as_str().unwrap())
        .arg("--to")
        .arg(pg.url("dst_fail"))
        .run()
        .fails_with(1);
    out.stderr_contains("nothing was restored")
        .stderr_contains("vanished");
    assert!(!pg.has_db("dst_fail"));
}

#[test]
fn backups_go_only_where_they_fit() {
    let pg = cluster();
    let (_tmp, artifact) = dumped("src_kind", "plain");
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg("/tmp/somewhere")
        .run()
        .fails_with(1);
    assert!(
        out.stderr
            .contains("database dump; restore it with --to postgres://"),
        "{}",
        out.stderr
    );
    let tmp = tempdir().unwrap();
    sample_tree(&tmp.path().join("data"));
    let record = ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("data"))
        .arg("--to")
        .arg(tmp.path().join("b"))
        .run()
        .success()
        .record();
    let out = ops("ops-restore")
        .arg(record["path"].as_str().unwrap())
        .arg("--to")
        .arg(pg.url("nope"))
        .run()
        .fails_with(1);
    out.stderr_contains("restore it into a directory");
}

#[test]
fn ctrl_c_during_a_restore_drops_the_database_it_created() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let pg = cluster();
    pg.create_db("slow_src");
    pg.psql("slow_src", "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g; CREATE INDEX ON t (v);");
    let tmp = tempdir().unwrap();
    let record = ops("ops-backup")
        .args(["create", &pg.url("slow_src"), "--to"])
        .arg(tmp.path())
        .run()
        .success()
        .record();
    let child = Command::new(ops_tests::bin_dir().join("ops-restore"))
        .arg(record["path"].as_str().unwrap())
        .arg("--to")
        .arg(pg.url("slow_dst"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !pg.has_db("slow_dst") {
        assert!(started.elapsed() < Duration::from_secs(30), "no database");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (status, stderr) = ops_tests::interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "ops-restore: error: interrupted; database slow_dst it had created was dropped"
    );
    assert!(
        !pg.has_db("slow_dst"),
        "the half-restored database was left"
    );
    let sessions = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ops'",
    );
    assert_eq!(sessions, "0", "sessions left running");
}
