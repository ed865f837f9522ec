//! ops-compact on a real, throwaway PostgreSQL cluster: bloat is reported
//! by a dry run, VACUUM FULL reclaims it, bloated indexes are rebuilt, and
//! a table another session has locked is skipped within the lock timeout.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ops_tests::ops;
use ops_tests::pg::{cluster, SECRET_PASSWORD};
use serde_json::Value;

fn compact(args: &[&str]) -> ops_tests::Outcome {
    ops("ops-compact").args(args).run()
}

/// Tests take turns: an open transaction in one (the lock holder) would
/// keep VACUUM in another from removing dead tuples.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until the statistics show the dead tuples of `table`: a session's
/// counts reach them shortly after it ends, not at once.
fn wait_for_dead_tuples(db: &str, table: &str) {
    let started = Instant::now();
    let query = format!("SELECT n_dead_tup > 0 FROM pg_stat_user_tables WHERE relname = '{table}'");
    while cluster().psql(db, &query) != "t" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dead tuples in the statistics"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The record for relation `target` in a run's output.
fn find(records: &[Value], target: &str) -> Value {
    records
        .iter()
        .find(|r| r["target"] == target)
        .unwrap_or_else(|| panic!("no record for {target}: {records:?}"))
        .clone()
}

/// A table of 200k rows of which three in four are deleted: bloat that
/// only VACUUM FULL returns to the operating system.
fn bloated(db: &str) {
    let pg = cluster();
    pg.create_db(db);
    pg.psql(
        db,
        "CREATE TABLE posts (id int PRIMARY KEY, body text) WITH (autovacuum_enabled = false); \
         CREATE TABLE quiet (id int PRIMARY KEY) WITH (autovacuum_enabled = false); \
         INSERT INTO posts SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g; \
         INSERT INTO quiet SELECT generate_series(1, 1000); \
         SELECT pg_stat_force_next_flush();",
    );
    pg.psql(db, "DELETE FROM posts WHERE id % 4 <> 0");
    wait_for_dead_tuples(db, "posts");
}

#[test]
fn bad_arguments_and_unreachable_servers() {
    let out = compact(&["postgres://postgres@127.0.0.1:1/app", "--dry-run"]).fails_with(1);
    out.stderr_contains("not reachable");
    let out = compact(&["postgres://[x/app"]).fails_with(2);
    out.stderr_contains("invalid database URL");
    let url = cluster().url("postgres");
    let out = compact(&[&url, "--full"]).fails_with(2);
    out.stderr_contains("--yes");
    let out = compact(&[&url, "--older-than", "7d"]).fails_with(2);
    out.stderr_contains("--older-than applies to --files");
    let out = compact(&[&url, "--lock-timeout", "soon"]).fails_with(2);
    out.stderr_contains("invalid duration");
    let out = compact(&[&url, "--table", "nosuch", "--dry-run"]).fails_with(2);
    out.stderr_contains("--table nosuch: no such table");
}

#[test]
fn the_dry_run_reports_bloat_and_vacuum_full_reclaims_it() {
    let _turn = serial();
    let pg = cluster();
    bloated("compact_full");
    let url = pg.url("compact_full");
    let size = || -> u64 {
        pg.psql("compact_full", "SELECT pg_total_relation_size('posts')")
            .parse()
            .unwrap()
    };
    let before = size();

    // Without pgstattuple: estimated from statistics, and said so.
    let plan = compact(&[&url, "--dry-run"]).success().records();
    let posts = find(&plan, "public.posts");
    assert_eq!(posts["type"], "compact");
    assert_eq!(posts["kind"], "postgres");
    assert_eq!(posts["method"], "statistics", "{posts}");
    assert_eq!(posts["action"], "would-vacuum", "{posts}");
    assert!(posts["bloat_percent"].as_f64().unwrap() >= 50.0, "{posts}");
    assert_eq!(find(&plan, "public.quiet")["action"], "skipped");
    assert_eq!(find(&plan, "public.posts_pkey")["relation"], "index");
    assert_eq!(size(), before, "a dry run changes nothing");

    // Analyzed: estimated from the row width the statistics give.
    pg.psql("compact_full", "ANALYZE posts");
    let plan = compact(&[&url, "--dry-run"]).success().records();
    let posts = find(&plan, "public.posts");
    assert_eq!(posts["method"], "statistics", "{posts}");
    let estimate = posts["bloat_percent"].as_f64().unwrap();
    assert!(
        (60.0..=90.0).contains(&estimate),
        "three in four rows deleted: {posts}"
    );
    let index = find(&plan, "public.posts_pkey");
    assert_eq!(index["method"], "statistics", "{index}");
    let estimate = index["bloat_percent"].as_f64().unwrap();
    assert!((50.0..=90.0).contains(&estimate), "{index}");

    // With pgstattuple: measured.
    pg.psql("compact_full", "CREATE EXTENSION pgstattuple");
    let plan = compact(&[&url, "--dry-run", "--full"]).success().records();
    let posts = find(&plan, "public.posts");
    assert_eq!(posts["method"], "pgstattuple", "{posts}");
    assert_eq!(posts["action"], "would-vacuum-full", "{posts}");
    let bloat = posts["bloat_bytes"].as_u64().unwrap();
    assert!(posts["bloat_percent"].as_f64().unwrap() >= 50.0, "{posts}");
    assert_eq!(find(&plan, "public.quiet")["action"], "skipped");

    let done = compact(&[&url, "--full", "--min-bloat", "20%", "--yes"])
        .success()
        .records();
    let posts = find(&done, "public.posts");
    assert_eq!(posts["action"], "vacuumed-full", "{posts}");
    assert!(posts["sql"]
        .as_str()
        .unwrap()
        .starts_with("VACUUM (FULL, ANALYZE)"));
    assert!(posts["seconds"].as_f64().is_some(), "{posts}");
    let after = size();
    assert_eq!(posts["after_bytes"].as_u64().unwrap(), after);
    assert!(
        before - after >= bloat / 2,
        "reclaimed {} of {bloat} bloated bytes: {posts}",
        before - after
    );
    assert_eq!(
        find(&done, "public.posts_pkey")["action"],
        "rebuilt-with-table"
    );
    assert_eq!(find(&done, "public.quiet")["action"], "skipped");
    assert_eq!(
        pg.psql("compact_full", "SELECT count(*) FROM posts"),
        "50000"
    );
}

#[test]
fn dead_tuples_get_vacuum_analyze_and_bloated_indexes_a_concurrent_reindex() {
    let _turn = serial();
    let pg = cluster();
    let db = "compact_vacuum";
    pg.create_db(db);
    pg.psql(
        db,
        "CREATE EXTENSION pgstattuple; \
         CREATE TABLE events (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false); \
         INSERT INTO events SELECT g, g FROM generate_series(1, 100000) g;",
    );
    pg.psql(db, "DELETE FROM events WHERE id % 10 <> 0");
    wait_for_dead_tuples(db, "events");
    // A password in the URL never reaches the records.
    let url = pg.secret_url(db, SECRET_PASSWORD);
    let out = compact(&[&url]).success();
    out.stdout_lacks(SECRET_PASSWORD)
        .stderr_lacks(SECRET_PASSWORD);
    let records = out.records();
    let events = find(&records, "public.events");
    assert_eq!(events["action"], "vacuumed", "{events}");
    assert_eq!(events["sql"], "VACUUM (ANALYZE) \"public\".\"events\"");
    assert_eq!(
        pg.psql(db, "SELECT dead_tuple_count FROM pgstattuple('events')"),
        "0",
        "VACUUM ran"
    );
    // The index keeps its pages, nine in ten of its entries gone.
    let index = find(&records, "public.events_pkey");
    assert_eq!(index["action"], "skipped", "{index}");
    let plan = compact(&[&url, "--reindex", "--dry-run"])
        .success()
        .records();
    let index = find(&plan, "public.events_pkey");
    assert_eq!(index["action"], "would-reindex", "{index}");
    assert!(index["bloat_percent"].as_f64().unwrap() >= 50.0, "{index}");
    let done = compact(&[&url, "--reindex", "--table", "events"])
        .success()
        .records();
    let index = find(&done, "public.events_pkey");
    assert_eq!(index["action"], "reindexed", "{index}");
    assert!(index["sql"]
        .as_str()
        .unwrap()
        .starts_with("REINDEX INDEX CONCURRENTLY"));
    let (before, after) = (
        index["before_bytes"].as_u64().unwrap(),
        index["after_bytes"].as_u64().unwrap(),
    );
    assert!(after * 2 < before, "{index}");
    assert_eq!(
        pg.psql(
            db,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_pkey'::regclass"
        ),
        "t"
    );
    assert_eq!(
        find(&done, "public.events")["action"],
        "skipped",
        "vacuumed already"
    );
}

#[test]
fn tables_this_user_may_not_vacuum_are_reported_not_pretended() {
    let _turn = serial();
    let pg = cluster();
    bloated("compact_owner");
    pg.psql(
        "compact_owner",
        "DO $$ BEGIN CREATE ROLE plain_role LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain_role",
    );
    let url = format!(
        "postgres://plain_role@/compact_owner?host={}&port={}",
        pg.socket_dir.display(),
        pg.port
    );
    let out = compact(&[&url]).success();
    let posts = find(&out.records(), "public.posts");
    assert_eq!(posts["action"], "skipped", "{posts}");
    assert!(
        posts["reason"]
            .as_str()
            .unwrap()
            .contains("only its owner or a superuser"),
        "{posts}"
    );
    out.stderr_contains("not vacuumed");
}

#[test]
fn pgstattuple_that_this_role_may_not_use_falls_back_to_estimates_and_says_so() {
    let _turn = serial();
    let pg = cluster();
    bloated("compact_estimates");
    pg.psql(
        "compact_estimates",
        "CREATE EXTENSION IF NOT EXISTS pgstattuple; \
         DO $$ BEGIN CREATE ROLE plain_role LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain_role",
    );
    let url = format!(
        "postgres://plain_role@/compact_estimates?host={}&port={}",
        pg.socket_dir.display(),
        pg.port
    );
    let out = compact(&[&url, "--dry-run"]).success();
    let posts = find(&out.records(), "public.posts");
    assert_eq!(posts["method"], "statistics", "{posts}");
    let said: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("pgstattuple"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {}", out.stderr);
    assert!(
        said[0].contains("estimated from the statistics")
            && said[0].contains("pg_stat_scan_tables"),
        "{}",
        out.stderr
    );
    let exact = compact(&[&pg.url("compact_estimates"), "--dry-run"]).success();
    assert_eq!(
        find(&exact.records(), "public.posts")["method"],
        "pgstattuple",
        "a superuser measures exactly"
    );
    exact.stderr_lacks("estimated");
}

/// A psql session holding an ACCESS EXCLUSIVE lock on a table until
/// dropped.
struct Locker(Child);

impl Locker {
    fn hold(db: &str, table: &str) -> Locker {
        let pg = cluster();
        let child = Command::new("psql")
            .env("PGAPPNAME", "ops-test-locker")
            .args(["-X", "-q", "-h"])
            .arg(&pg.socket_dir)
            .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", db, "-c"])
            .arg(format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let granted = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
        );
        let started = Instant::now();
        while pg.psql(db, &granted) != "1" {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the lock was never granted"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Locker(child)
    }
}

impl Drop for Locker {
    /// Ends the session, not just psql: a backend in pg_sleep does not
    /// notice its client is gone, and its open transaction would keep
    /// VACUUM in other tests from removing anything.
    fn drop(&mut self) {
        cluster().psql(
            "postgres",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'ops-test-locker'",
        );
        let _ = self.0.kill();
        let _ = self.0.wait();
        let started = Instant::now();
        while cluster().psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ops-test-locker'",
        ) != "0"
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_table_locked_by_another_session_is_skipped_within_the_lock_timeout_or_statement_timeout() {
    let _turn = serial();
    let pg = cluster();
    bloated("compact_locked");
    let url = pg.url("compact_locked");
    let _locker = Locker::hold("compact_locked", "posts");
    let started = Instant::now();
    let out = compact(&[&url, "--lock-timeout", "1s", "--min-dead", "0%"]).fails_with(1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}: {out:?}");
    let records = out.records();
    let posts = find(&records, "public.posts");
    assert_eq!(posts["action"], "skipped", "{posts}");
    assert_eq!(posts["locked"], true, "{posts}");
    assert!(
        posts["error"]
            .as_str()
            .unwrap()
            .contains("--lock-timeout 1s"),
        "{posts}"
    );
    out.stderr_contains("warning: skipped public.posts");
    assert_eq!(find(&records, "public.posts_pkey")["locked"], true);
    // The other table is not held up.
    assert!(find(&records, "public.quiet").get("error").is_none());

    // A statement timeout shorter than the lock timeout cancels the wait.
    let started = Instant::now();
    let out = compact(&[
        &url,
        "--table",
        "posts",
        "--lock-timeout",
        "60s",
        "--statement-timeout",
        "1s",
    ])
    .fails_with(1);
    assert!(started.elapsed() < Duration::from_secs(10), "{out:?}");
    let posts = find(&out.records(), "public.posts");
    assert_eq!(posts["action"], "failed", "{posts}");
    let error = posts["error"].as_str().unwrap();
    assert!(error.contains("--statement-timeout 1s"), "{posts}");
}

#[test]
fn ctrl_c_cancels_the_vacuum_full_on_the_server() {
    let _turn = serial();
    let pg = cluster();
    bloated("compact_interrupted");
    // A reader's ACCESS SHARE lock lets the measurements through and keeps
    // VACUUM FULL waiting for its ACCESS EXCLUSIVE one.
    let reader = Command::new("psql")
        .env("PGAPPNAME", "ops-test-locker")
        .args(["-X", "-q", "-h"])
        .arg(&pg.socket_dir)
        .args(["-p", &pg.port.to_string(), "-U", "postgres"])
        .args(["-d", "compact_interrupted", "-c"])
        .arg("BEGIN; SELECT count(*) FROM posts; SELECT pg_sleep(120);")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _reader = Locker(reader);
    let vacuums = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'VACUUM (FULL%'";
    let child = Command::new(ops_tests::bin_dir().join("ops-compact"))
        .arg(pg.url("compact_interrupted"))
        .args([
            "--full",
            "--yes",
            "--table",
            "posts",
            "--lock-timeout",
            "100s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while pg.psql("postgres", vacuums) != "1" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "VACUUM FULL never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, stderr) = ops_tests::interrupt(child);
    let code = status.code();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("ops-compact: error: interrupted; VACUUM (FULL, ANALYZE)")
            && stderr.contains("was cancelled"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let started = Instant::now();
    while pg.psql("postgres", vacuums) != "0" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "VACUUM FULL still runs on the server after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
