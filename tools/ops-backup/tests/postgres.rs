//! ops-backup create with a database: what works, and every way it can
//! fail, each with exit 1, a clear message, no artifact under a final name
//! and no password anywhere.
#![allow(clippy::unwrap_used, clippy::panic)]
// Artifact names are ours, always lower case.
#![allow(clippy::case_sensitive_file_extension_comparisons)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use ops_tests::pg::{cluster, SECRET_PASSWORD, SECRET_USER};
use ops_tests::{names, ops, Outcome};
use tempfile::tempdir;

fn small_db(name: &str) {
    let pg = cluster();
    pg.create_db(name);
    pg.psql(name, "CREATE TABLE items (id int PRIMARY KEY, label text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 2500) g; CREATE TABLE empty_one (x int);");
}

/// Exit 1, the message, nothing left in the backup directory, no password.
fn assert_failed_cleanly(out: &Outcome, message: &str, backups: &Path) {
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains(message);
    assert!(
        !out.stderr.contains(SECRET_PASSWORD) && !out.stdout.contains(SECRET_PASSWORD),
        "{out:?}"
    );
    assert!(
        names(backups).is_empty(),
        "left behind: {:?}",
        names(backups)
    );
}

#[test]
fn a_database_becomes_a_checked_dump_with_row_counts() {
    small_db("shop");
    let tmp = tempdir().unwrap();
    let record = ops("ops-backup")
        .args(["create", &cluster().url("shop"), "--to"])
        .arg(tmp.path())
        .run()
        .success()
        .record();
    let id = record["id"].as_str().unwrap();
    assert!(id.starts_with("shop_"), "{id}");
    assert_eq!(record["source"]["kind"], "postgres");
    assert_eq!(record["format"], "sql.zst");
    let manifest = fs::read_to_string(tmp.path().join(format!("{id}.manifest.jsonl"))).unwrap();
    assert!(
        manifest.contains(
            r#"{"type":"table","schema":"public","name":"items","kind":"table","rows":2500}"#
        ),
        "{manifest}"
    );
    assert!(
        manifest.contains(r#""name":"empty_one","kind":"table","rows":0"#),
        "{manifest}"
    );
    assert!(
        manifest.contains("\"server_version\":\"") && manifest.contains("\"pg_dump_version\":\""),
        "{manifest}"
    );
    let artifact = tmp.path().join(format!("{id}.sql.zst"));
    assert_eq!(
        fs::metadata(&artifact).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sql = Command::new("zstd")
        .arg("-dc")
        .arg(&artifact)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&sql.stdout).contains("PostgreSQL database dump complete"));
    let named = ops("ops-backup")
        .args([
            "create",
            &cluster().url("shop"),
            "--name",
            "nightly",
            "--format",
            "custom",
            "--to",
        ])
        .arg(tmp.path())
        .run()
        .success()
        .record();
    assert!(
        named["id"].as_str().unwrap().starts_with("nightly_")
            && named["path"].as_str().unwrap().ends_with(".dump")
    );
}

#[test]
fn libpq_environment_and_pgpass_work() {
    small_db("envdb");
    let pg = cluster();
    let tmp = tempdir().unwrap();
    let record = ops("ops-backup")
        .args(["create", "postgres:", "--to"])
        .arg(tmp.path().join("b"))
        .env("PGHOST", &pg.socket_dir)
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "envdb")
        .run()
        .success()
        .record();
    assert_eq!(record["name"], "envdb");
    let url = format!("postgres://{SECRET_USER}@127.0.0.1:{}/envdb", pg.port);
    ops("ops-backup")
        .args(["create", &url, "--to"])
        .arg(tmp.path().join("b"))
        .env("PGPASSWORD", SECRET_PASSWORD)
        .run()
        .success();
    let home = tmp.path().join("home");
    fs::create_dir(&home).unwrap();
    fs::write(
        home.join(".pgpass"),
        format!("127.0.0.1:{}:*:{SECRET_USER}:{SECRET_PASSWORD}\n", pg.port),
    )
    .unwrap();
    fs::set_permissions(home.join(".pgpass"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = ops("ops-backup")
        .args(["create", &url, "--to"])
        .arg(tmp.path().join("b"))
        .env("HOME", &home)
        .run()
        .success();
    for name in names(&tmp.path().join("b")) {
        let text = fs::read(tmp.path().join("b").join(&name)).unwrap();
        assert!(
            !String::from_utf8_lossy(&text).contains(SECRET_PASSWORD),
            "password in {name}"
        );
    }
    out.stdout_lacks(SECRET_PASSWORD);
}

#[test]
fn an_unreachable_server_is_named_with_host_and_port() {
    let tmp = tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://{SECRET_USER}:{SECRET_PASSWORD}@127.0.0.1:{port}/app");
    let out = ops("ops-backup")
        .args(["create", &url, "--to"])
        .arg(tmp.path())
        .run();
    assert_failed_cleanly(
        &out,
        &format!("database not reachable at 127.0.0.1:{port}"),
        tmp.path(),
    );
}

#[test]
fn wrong_credentials_and_missing_databases_say_so() {
    small_db("authdb");
    let pg = cluster();
    let tmp = tempdir().unwrap();
    let out = ops("ops-backup")
        .args([
            "create",
            &pg.secret_url("authdb", "not-the-password"),
            "--to",
        ])
        .arg(tmp.path())
        .run();
    assert_failed_cleanly(
        &out,
        &format!("authentication failed for user {SECRET_USER}"),
        tmp.path(),
    );
    out.stderr_lacks("not-the-password");
    let out = ops("ops-backup")
        .args(["create", &pg.url("no_such_db"), "--to"])
        .arg(tmp.path())
        .run();
    assert_failed_cleanly(&out, "database no_such_db does not exist", tmp.path());
}

/// A directory with a fake `pg_dump` first in PATH.
fn fake_pg_dump(dir: &Path, script: &str) -> String {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join("pg_dump");
    fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

#[test]
fn a_missing_or_too_old_pg_dump_is_explained() {
    small_db("toolsdb");
    let tmp = tempdir().unwrap();
    let url = cluster().url("toolsdb");
    let out = ops("ops-backup")
        .args(["create", &url, "--to"])
        .arg(tmp.path().join("b"))
        .env("PATH", "/nonexistent")
        .run();
    assert_failed_cleanly(
        &out,
        "pg_dump not found in PATH; install the PostgreSQL client tools",
        &tmp.path().join("b"),
    );
    let path = fake_pg_dump(
        &tmp.path().join("bin"),
        "echo 'pg_dump (PostgreSQL) 9.6.24'",
    );
    let out = ops("ops-backup")
        .args(["create", &url, "--to"])
        .arg(tmp.path().join("b"))
        .env("PATH", path)
        .run();
    assert_failed_cleanly(
        &out,
        "pg_dump 9.6.24 is older than the server",
        &tmp.path().join("b"),
    );
    out.stderr_contains("postgresql-client-1");
}

#[test]
fn a_pg_dump_killed_midway_leaves_no_backup() {
    let pg = cluster();
    pg.create_db("killdb");
    pg.psql(
        "killdb",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g",
    );
    let tmp = tempdir().unwrap();
    let script = "if [ \"$1\" = --version ]; then exec /usr/bin/pg_dump --version; fi\n/usr/bin/pg_dump \"$@\" | head -c 100000\nkill -9 $$";
    let path = fake_pg_dump(&tmp.path().join("bin"), script);
    let backups = tmp.path().join("b");
    let out = ops("ops-backup")
        .args(["create", &pg.url("killdb"), "--to"])
        .arg(&backups)
        .env("PATH", path)
        .run();
    assert_failed_cleanly(&out, "pg_dump was killed by signal 9", &backups);
}

#[test]
fn a_full_disk_during_the_dump_leaves_no_backup() {
    let Some(disk) = ops_tests::SmallDisk::mount() else {
        return;
    };
    let pg = cluster();
    pg.create_db("bigdump");
    pg.psql(
        "bigdump",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 300000) g",
    );
    let backups = disk.path.join("b");
    let out = ops("ops-backup")
        .args(["create", &pg.url("bigdump"), "--to"])
        .arg(&backups)
        .run();
    assert_failed_cleanly(&out, "No space left on device", &backups);
}

#[test]
fn database_only_and_directory_only_flags_are_refused() {
    let tmp = tempdir().unwrap();
    ops("ops-backup")
        .args([
            "create",
            "postgres://x@localhost/db",
            "--exclude",
            "*.log",
            "--to",
        ])
        .arg(tmp.path())
        .run()
        .fails_with(2);
    ops("ops-backup")
        .args(["create", ".", "--format", "custom", "--to"])
        .arg(tmp.path())
        .run()
        .fails_with(2);
}

/// Sends SIGINT once `ready` holds; the exit status and stderr.
fn interrupt_when(child: std::process::Child, ready: impl Fn() -> bool) -> (Option<i32>, String) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (status, stderr) = ops_tests::interrupt(child);
    (status.code(), stderr)
}

#[test]
fn ctrl_c_during_a_dump_stops_pg_dump_and_leaves_nothing() {
    let pg = cluster();
    pg.create_db("dump_interrupted");
    pg.psql(
        "dump_interrupted",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g;",
    );
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("b");
    let child = Command::new(ops_tests::bin_dir().join("ops-backup"))
        .args([
            "create",
            &pg.url("dump_interrupted"),
            "--level",
            "19",
            "--threads",
            "1",
            "--to",
        ])
        .arg(&backups)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stderr) = interrupt_when(child, || {
        names(&backups).iter().any(|n| n.ends_with(".ops-tmp"))
    });
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.starts_with("ops-backup: error: interrupted; no backup was written")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    let left: Vec<String> = names(&backups)
        .into_iter()
        .filter(|n| n != ".ops-lock")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let started = std::time::Instant::now();
    while pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'dump_interrupted'",
    ) != "0"
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "pg_dump or its sessions still run"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn keyword_strings_and_upper_case_schemes_are_databases_and_never_echo_the_password() {
    let pg = cluster();
    small_db("keywords_db");
    pg.psql(
        "keywords_db",
        &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {SECRET_USER}"),
    );
    let tmp = tempdir().unwrap();
    let keywords = format!(
        "host=127.0.0.1 port={} user={SECRET_USER} password={SECRET_PASSWORD} dbname=keywords_db",
        pg.port
    );
    let upper =
        pg.secret_url("keywords_db", SECRET_PASSWORD)
            .replacen("postgres://", "POSTGRES://", 1);
    for source in [&keywords, &upper] {
        let out = ops("ops-backup")
            .args(["create", source, "--to"])
            .arg(tmp.path())
            .run()
            .success();
        out.stderr_lacks(SECRET_PASSWORD)
            .stdout_lacks(SECRET_PASSWORD);
        assert_eq!(out.record()["source"]["kind"], "postgres", "{}", out.stdout);
    }
    // Mistyped: not recognised, and the password is not echoed.
    let typo = format!("hots=127.0.0.1 password={SECRET_PASSWORD} dbname=keywords_db");
    let out = ops("ops-backup")
        .args(["create", &typo, "--to"])
        .arg(tmp.path())
        .run()
        .fails_with(1);
    assert!(
        out.stderr
            .contains("cannot back up hots=127.0.0.1 password=***"),
        "{}",
        out.stderr
    );
    out.stderr_lacks(SECRET_PASSWORD);
}
