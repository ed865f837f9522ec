//! ops-health --postgres and --sql against a throwaway PostgreSQL cluster:
//! healthy, stopped, an old idle-in-transaction session, dead tuples, SQL
//! integrity checks, and a pg_dump that could not dump the server.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ops_tests::pg::{cluster, SECRET_PASSWORD};
use ops_tests::{ops, Outcome};
use serde_json::Value;
use tempfile::tempdir;

fn client(db: &str) -> postgres::Client {
    let pg = cluster();
    postgres::Config::new()
        .host_path(&pg.socket_dir)
        .port(pg.port)
        .user("postgres")
        .dbname(db)
        .connect(postgres::NoTls)
        .unwrap()
}

fn by_check(out: &Outcome, check: &str) -> Value {
    out.records()
        .into_iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no {check} record in {}", out.stdout))
}

#[test]
fn a_healthy_server_reports_every_finding() {
    let pg = cluster();
    pg.create_db("healthy");
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(pg.url("healthy"))
        .run()
        .success();
    let checks: Vec<String> = out
        .records()
        .iter()
        .map(|r| r["check"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        checks,
        [
            "postgres",
            "pg_connections",
            "pg_sessions",
            "pg_dead_tuples",
            "pg_dump"
        ]
    );
    assert!(
        out.records().iter().all(|r| r["status"] == "ok"),
        "{}",
        out.stdout
    );
    let overview = by_check(&out, "postgres");
    assert!(overview["message"]
        .as_str()
        .unwrap()
        .starts_with("PostgreSQL 1"));
    assert!(overview["metrics"]["connect_ms"].as_f64().unwrap() < 5000.0);
    assert!(overview["metrics"]["database_size_bytes"].as_f64().unwrap() > 1e6);
    let connections = by_check(&out, "pg_connections");
    assert_eq!(connections["metrics"]["max_connections"], 60.0);
    assert!(connections["metrics"]["connections"].as_f64().unwrap() >= 1.0);
    assert!(by_check(&out, "pg_dump")["message"]
        .as_str()
        .unwrap()
        .contains("can dump server"));
}

#[test]
fn a_stopped_server_is_critical_and_its_sql_checks_unknown() {
    let pg = cluster();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgres://postgres@/postgres?host={}&port={free}",
        pg.socket_dir.display()
    );
    let out = ops("ops-health")
        .args(["--postgres", &url, "--sql", "orphans=SELECT 0"])
        .run()
        .fails_with(2);
    let overview = by_check(&out, "postgres");
    assert_eq!(overview["status"], "crit");
    assert_eq!(overview["metrics"]["up"], 0.0);
    assert!(
        overview["message"]
            .as_str()
            .unwrap()
            .contains("not reachable")
            || overview["message"]
                .as_str()
                .unwrap()
                .contains("No such file"),
        "{overview}"
    );
    assert_eq!(by_check(&out, "sql")["status"], "unknown");
}

#[test]
fn a_session_idle_in_transaction_too_long_warns() {
    let pg = cluster();
    pg.create_db("idle");
    let mut holder = client("idle");
    holder.batch_execute("BEGIN; SELECT 1").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let url = pg.url("idle");
    let out = ops("ops-health")
        .args(["--postgres", &url, "--idle-warn", "1s"])
        .run()
        .fails_with(1);
    let sessions = by_check(&out, "pg_sessions");
    assert_eq!(sessions["status"], "warn");
    assert!(sessions["message"]
        .as_str()
        .unwrap()
        .contains("idle in a transaction"));
    assert!(sessions["metrics"]["idle_in_transaction"].as_f64().unwrap() >= 1.0);
    assert!(
        sessions["metrics"]["oldest_idle_in_transaction_seconds"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    holder.batch_execute("COMMIT").unwrap();
    let out = ops("ops-health")
        .args(["--postgres", &url, "--idle-warn", "1s"])
        .run();
    assert_eq!(
        by_check(&out, "pg_sessions")["status"],
        "ok",
        "{}",
        out.stdout
    );
}

#[test]
fn sql_checks_are_ok_at_zero_warn_or_crit_above_and_unknown_when_broken() {
    let pg = cluster();
    pg.create_db("integrity");
    pg.psql(
        "integrity",
        "CREATE TABLE subreddits (id int PRIMARY KEY); CREATE TABLE posts (id int, subreddit_id int); \
         INSERT INTO subreddits VALUES (1); INSERT INTO posts VALUES (1, 1), (2, 7), (3, 8);",
    );
    let orphans = "orphaned_posts=SELECT count(*) FROM posts p LEFT JOIN subreddits s ON s.id=p.subreddit_id WHERE s.id IS NULL";
    let url = pg.secret_url("integrity", SECRET_PASSWORD);
    let run = |extra: &[&str]| {
        ops("ops-health")
            .args(["--postgres", &url])
            .args(extra)
            .run()
    };
    let out = run(&["--sql", orphans]).fails_with(1);
    let sql = by_check(&out, "sql");
    assert_eq!(
        (sql["target"].as_str(), sql["status"].as_str()),
        (Some("orphaned_posts"), Some("warn"))
    );
    assert_eq!(sql["metrics"]["value"], 2.0);
    out.stdout_lacks(SECRET_PASSWORD)
        .stderr_lacks(SECRET_PASSWORD);
    assert_eq!(
        by_check(&run(&["--sql", orphans, "--sql-crit"]).fails_with(2), "sql")["status"],
        "crit"
    );
    assert_eq!(
        by_check(&run(&["--sql", "none=SELECT 0"]).success(), "sql")["status"],
        "ok"
    );
    for broken in [
        "text=SELECT 'many'",
        "typo=SELEC 1",
        "empty=SELECT 1 WHERE false",
    ] {
        let sql = by_check(&run(&["--sql", broken]).fails_with(3), "sql");
        assert_eq!(sql["status"], "unknown", "{broken}: {sql}");
    }
}

#[test]
fn a_sql_check_that_writes_is_refused_and_changes_nothing() {
    let pg = cluster();
    pg.create_db("readonly");
    pg.psql(
        "readonly",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3); CREATE SEQUENCE s;",
    );
    let url = pg.url("readonly");
    for writer in [
        "cte=WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d",
        "two=SELECT 0; DELETE FROM t",
        "escape=COMMIT; DELETE FROM t; SELECT 0",
        "rw=SET TRANSACTION READ WRITE; DELETE FROM t; SELECT 0",
        "block=DO $$BEGIN SET TRANSACTION READ WRITE; DELETE FROM t; END$$",
        "seq=SELECT nextval('s') - nextval('s')",
        "ddl=DROP TABLE t",
    ] {
        let out = ops("ops-health")
            .args(["--postgres", &url, "--sql", writer])
            .run();
        let sql = by_check(&out, "sql");
        assert_eq!(sql["status"], "unknown", "{writer}: {sql}");
        assert_eq!(
            pg.psql("readonly", "SELECT count(*) FROM t").trim(),
            "3",
            "{writer} deleted rows: {sql}"
        );
    }
    let message = |query: &str| {
        let out = ops("ops-health")
            .args(["--postgres", &url, "--sql", query])
            .run();
        by_check(&out, "sql")["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let cte = message("cte=WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d");
    assert!(cte.contains("read-only transaction"), "{cte}");
    let two = message("two=SELECT 0; DELETE FROM t");
    assert!(two.contains("one read-only statement"), "{two}");
    assert_eq!(
        pg.psql("readonly", "SELECT last_value FROM s").trim(),
        "1",
        "the sequence was never advanced"
    );
    assert_eq!(pg.psql("readonly", "SELECT is_called FROM s").trim(), "f");
}

const ORPHANS: &str = "orphans=SELECT count(*) FROM posts p WHERE NOT EXISTS \
    (SELECT 1 FROM subreddits s WHERE s.id = p.subreddit_id)";
const REMOVE_ORPHANS: &str = "orphans=DELETE FROM posts WHERE id IN (SELECT p.id FROM posts p \
    WHERE NOT EXISTS (SELECT 1 FROM subreddits s WHERE s.id = p.subreddit_id) LIMIT $1)";

/// A database with 10 good posts and 2500 orphaned ones.
fn orphaned(db: &str) -> String {
    let pg = cluster();
    pg.create_db(db);
    pg.psql(
        db,
        "CREATE TABLE subreddits (id int PRIMARY KEY); \
         CREATE TABLE posts (id int PRIMARY KEY, subreddit_id int); \
         INSERT INTO subreddits VALUES (1); \
         INSERT INTO posts SELECT g, 1 FROM generate_series(1, 10) g; \
         INSERT INTO posts SELECT g, 2 FROM generate_series(11, 2510) g;",
    );
    pg.url(db)
}

/// ops-health with the orphans check and its repair on `url`.
fn repairing(url: &str) -> ops_tests::Run {
    ops("ops-health").args([
        "--postgres",
        url,
        "--sql",
        ORPHANS,
        "--sql-fix",
        REMOVE_ORPHANS,
    ])
}

fn fix_records(out: &Outcome) -> Vec<Value> {
    out.records()
        .into_iter()
        .filter(|r| r["check"] == "fix")
        .collect()
}

#[test]
fn sql_fix_repairs_in_batches_until_the_check_passes() {
    let url = orphaned("repair");
    let pg = cluster();
    let unfixed = repairing(&url).run().fails_with(1);
    let sql = by_check(&unfixed, "sql");
    assert!(
        sql["message"].as_str().unwrap().contains("--fix"),
        "a check with a repair says how to run it: {sql}"
    );
    assert!(
        fix_records(&unfixed).is_empty(),
        "without --fix nothing runs"
    );
    assert_eq!(
        pg.psql("repair", "SELECT count(*) FROM posts").trim(),
        "2510"
    );

    let out = repairing(&url).args(["--fix", "--batch", "1000"]).run();
    let batches: Vec<(f64, f64)> = fix_records(&out)
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["target"], "orphans");
            (
                r["metrics"]["rows"].as_f64().unwrap(),
                r["metrics"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        batches,
        [(1000.0, 1500.0), (1000.0, 500.0), (500.0, 0.0)],
        "{}",
        out.stdout
    );
    assert_eq!(
        by_check(&out, "sql")["status"],
        "ok",
        "the check runs after"
    );
    assert_eq!(
        pg.psql("repair", "SELECT count(*), min(id), max(id) FROM posts")
            .trim(),
        "10|1|10",
        "the good posts are all there"
    );
    let again = repairing(&url).arg("--fix").run();
    let fixes = fix_records(&again);
    assert_eq!(fixes.len(), 1);
    assert!(
        fixes[0]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to repair"),
        "{}",
        fixes[0]
    );
}

#[test]
fn sql_fix_dry_run_says_what_it_would_repair_and_changes_nothing() {
    let url = orphaned("planned");
    let pg = cluster();
    let out = repairing(&url)
        .args(["--fix", "--dry-run", "--batch", "1000"])
        .run()
        .fails_with(1);
    let fixes = fix_records(&out);
    assert_eq!(fixes.len(), 1, "{}", out.stdout);
    let message = fixes[0]["message"].as_str().unwrap();
    assert!(
        message.contains("would repair orphans = 2500") && message.contains("about 3"),
        "{message}"
    );
    assert_eq!(by_check(&out, "sql")["metrics"]["value"], 2500.0);
    assert_eq!(
        pg.psql("planned", "SELECT count(*) FROM posts").trim(),
        "2510"
    );
    let out = ops("ops-health")
        .args(["--postgres", &url, "--dry-run"])
        .run()
        .fails_with(3);
    out.stderr_contains("--fix");
}

#[test]
fn a_sql_fix_that_misses_what_its_check_counts_stops_after_one_batch() {
    let url = orphaned("misfix");
    let pg = cluster();
    let run = |fix: &str| {
        ops("ops-health")
            .args(["--postgres", &url, "--sql", ORPHANS, "--sql-fix", fix])
            .args(["--fix", "--batch", "5"])
            .run()
    };
    let wrong = "orphans=DELETE FROM posts WHERE id IN (SELECT id FROM posts ORDER BY id LIMIT $1)";
    let out = run(wrong).fails_with(2);
    let last = fix_records(&out).pop().unwrap();
    assert_eq!(last["status"], "crit", "{}", out.stdout);
    assert!(
        last["message"].as_str().unwrap().contains("does not count"),
        "{last}"
    );
    assert_eq!(
        pg.psql("misfix", "SELECT count(*) FROM posts").trim(),
        "2505",
        "one batch of 5, not the table"
    );
    let out = run("orphans=DELETE FROM posts WHERE id < 0 AND id < $1").fails_with(1);
    let last = fix_records(&out).pop().unwrap();
    assert_eq!(last["status"], "warn", "{}", out.stdout);
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("changed nothing"),
        "{last}"
    );
    for (broken, says) in [
        ("orphans=DELETE FROM posts", "as $1"),
        ("orphans=DELET FROM posts LIMIT $1", "cannot run"),
        (
            "orphans=DELETE FROM posts WHERE id < $1; DELETE FROM subreddits",
            "cannot run",
        ),
    ] {
        let out = run(broken).fails_with(1);
        let fix = &fix_records(&out)[0];
        assert_eq!(fix["status"], "unknown", "{broken}: {fix}");
        assert!(
            fix["message"].as_str().unwrap().contains(says),
            "{broken}: {fix}"
        );
    }
    assert_eq!(
        pg.psql("misfix", "SELECT count(*) FROM posts").trim(),
        "2505"
    );
    assert_eq!(
        pg.psql("misfix", "SELECT count(*) FROM subreddits").trim(),
        "1"
    );
    let out = ops("ops-health")
        .args(["--postgres", &url, "--sql", ORPHANS])
        .args([
            "--sql-fix",
            "other=DELETE FROM posts WHERE id < $1",
            "--fix",
        ])
        .run()
        .fails_with(3);
    out.stderr_contains("check named other");
}

#[test]
fn many_dead_tuples_warn_and_name_the_table() {
    let pg = cluster();
    pg.create_db("bloated");
    pg.psql(
        "bloated",
        "CREATE TABLE churn (id int); ALTER TABLE churn SET (autovacuum_enabled = off); \
         INSERT INTO churn SELECT generate_series(1, 5000); DELETE FROM churn WHERE id <= 3000;",
    );
    for _ in 0..50 {
        let dead = pg.psql(
            "bloated",
            "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables",
        );
        if dead.parse::<i64>().unwrap() >= 3000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(pg.url("bloated"))
        .run()
        .fails_with(1);
    let dead = by_check(&out, "pg_dead_tuples");
    assert_eq!(dead["status"], "warn");
    assert!(
        dead["message"]
            .as_str()
            .unwrap()
            .contains("public.churn 60%"),
        "{dead}"
    );
    assert_eq!(dead["metrics"]["max_dead_tuples"], 3000.0);
}

#[test]
fn a_pg_dump_that_cannot_dump_the_server_is_critical() {
    let pg = cluster();
    let tmp = tempdir().unwrap();
    let old = tmp.path().join("pg_dump");
    fs::write(&old, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(pg.url("postgres"))
        .env("PATH", tmp.path())
        .run()
        .fails_with(2);
    let dump = by_check(&out, "pg_dump");
    assert_eq!(dump["status"], "crit");
    assert!(
        dump["message"]
            .as_str()
            .unwrap()
            .contains("older than the server"),
        "{dump}"
    );
    let empty = tempdir().unwrap();
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(pg.url("postgres"))
        .env("PATH", empty.path())
        .run()
        .fails_with(2);
    assert!(by_check(&out, "pg_dump")["message"]
        .as_str()
        .unwrap()
        .contains("not found"));
}

#[test]
fn a_standby_reports_how_far_behind_it_replays() {
    let pg = cluster();
    let standby = pg.start_standby();
    pg.psql(
        "postgres",
        "CREATE TABLE IF NOT EXISTS replicated (x int); INSERT INTO replicated VALUES (1)",
    );
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(standby.url("postgres"))
        .run();
    let replication = by_check(&out, "pg_replication");
    assert_eq!(replication["status"], "ok", "{replication}");
    assert!(replication["message"]
        .as_str()
        .unwrap()
        .starts_with("standby, replaying"));
    assert!(
        replication["metrics"]["replay_lag_seconds"]
            .as_f64()
            .unwrap()
            < 300.0
    );
    let primary = ops("ops-health")
        .arg("--postgres")
        .arg(pg.url("postgres"))
        .run();
    assert!(
        !primary.stdout.contains("pg_replication"),
        "a primary has no replication record"
    );
}
