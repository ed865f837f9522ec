//! The maintenance scripts and Makefile targets, run end to end against
//! temporary directories and a throwaway PostgreSQL cluster: what cron and
//! `make` users rely on. The scripts also pass shellcheck.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ops_tests::pg::{cluster, SECRET_PASSWORD};
use ops_tests::{bin_dir, names, Outcome};
use serde_json::Value;
use tempfile::tempdir;

const OURS: [&str; 8] = [
    "scripts/backup.sh",
    "scripts/maintenance.sh",
    "scripts/cleanup-data.sh",
    "scripts/integrity.sh",
    "scripts/bench-compact.sh",
    "scripts/demo.sh",
    "scripts/test-deps.sh",
    "scripts/soak.sh",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A script with our binaries (OPS_BIN) and `vars` in its environment.
fn script(name: &str, vars: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(root().join("scripts").join(name));
    command.env("OPS_BIN", bin_dir());
    for key in [
        "DATABASE_URL",
        "DATA_DIRS",
        "RECORDS",
        "PROM_FILE",
        "SNAPSHOT_REPO",
        "RECIPIENTS_FILE",
        "DISK_WARN",
        "DISK_CRIT",
    ] {
        command.env_remove(key);
    }
    command.envs(vars.iter().copied());
    outcome(command)
}

/// `make -C <repo> TARGET VAR=value...` with the tools of OPS_BIN.
fn make(args: &[&str]) -> Outcome {
    let mut command = Command::new("make");
    command
        .args(["-s", "--no-print-directory", "-C"])
        .arg(root())
        .arg(format!("OPS_BIN={}", bin_dir().display()))
        .args(args);
    outcome(command)
}

fn outcome(mut command: Command) -> Outcome {
    let output = command.output().unwrap();
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn records(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Every log line starts with a UTC timestamp and the script's name.
fn assert_logged(stderr: &str, script: &str) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&format!(" {script}: ")))
        .collect();
    assert!(lines.len() >= 2, "no log lines: {stderr}");
    for line in lines {
        let stamp = line.split(' ').next().unwrap();
        assert!(
            stamp.parse::<jiff::Timestamp>().is_ok() && stamp.ends_with('Z'),
            "{line}"
        );
    }
}

fn data_tree(root: &Path) -> PathBuf {
    let data = root.join("data");
    fs::create_dir_all(data.join("uploads")).unwrap();
    fs::write(data.join("uploads/a.txt"), "hello\n").unwrap();
    data
}

fn aged(path: &Path, days: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "{\"n\":1}\n".repeat(200)).unwrap();
    let when = SystemTime::now() - Duration::from_secs(days * 86400);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn our_scripts_pass_shellcheck() {
    let found = Command::new("shellcheck").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "shellcheck is not installed (apt-get install shellcheck; .ci/run does it)"
    );
    let out = outcome({
        let mut command = Command::new("shellcheck");
        command.arg("-x").args(OURS).current_dir(root());
        command
    });
    assert_eq!(out.code, 0, "shellcheck: {}{}", out.stdout, out.stderr);
    for script in OURS {
        let text = fs::read_to_string(root().join(script)).unwrap();
        assert!(text.contains("set -euo pipefail"), "{script}");
    }
}

#[test]
fn backup_then_maintenance_against_a_database_and_a_directory() {
    let pg = cluster();
    pg.create_db("scripts_app");
    pg.psql(
        "scripts_app",
        "CREATE TABLE t (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false); \
         INSERT INTO t SELECT g, 'x' FROM generate_series(1, 20000) g",
    );
    pg.psql("scripts_app", "DELETE FROM t WHERE id % 2 = 0");
    let tmp = tempdir().unwrap();
    let data = data_tree(tmp.path());
    let backups = tmp.path().join("backups");
    let log = tmp.path().join("records.jsonl");
    let prom = tmp.path().join("ops.prom");
    // A password in the URL must not reach the log.
    let url = pg.secret_url("scripts_app", SECRET_PASSWORD);
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("DATA_DIRS", data.to_str().unwrap()),
        ("BACKUP_DIR", backups.to_str().unwrap()),
        ("KEEP", "1"),
        ("RECORDS", log.to_str().unwrap()),
        ("PROM_FILE", prom.to_str().unwrap()),
        // The machine's disk may be any share full; the run must not fail on it.
        ("DISK_WARN", "100%"),
        ("DISK_CRIT", "100%"),
    ];
    let first = script("backup.sh", &vars);
    assert_eq!(first.code, 0, "{first:?}");
    assert_logged(&first.stderr, "backup.sh");
    first.stderr_lacks(SECRET_PASSWORD);
    let second = script("backup.sh", &vars);
    assert_eq!(second.code, 0, "{second:?}");
    let made: Vec<Value> = records(&log)
        .into_iter()
        .filter(|r| r["type"] == "backup")
        .collect();
    let (kept, removed): (Vec<&Value>, Vec<&Value>) =
        made.iter().partition(|r| r["prune"]["action"] == "keep");
    assert_eq!(kept.len(), 4, "two sources, two runs: {made:?}");
    assert!(kept.iter().all(|r| r["verify"]["ok"] == true), "{made:?}");
    let first_ids: Vec<&Value> = kept[..2].iter().map(|r| &r["id"]).collect();
    let removed_ids: Vec<&Value> = removed.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        removed_ids.len(),
        2,
        "KEEP=1 removes the first run's: {made:?}"
    );
    assert!(
        removed_ids.iter().all(|id| first_ids.contains(id)),
        "{made:?}"
    );
    let manifests = names(&backups)
        .into_iter()
        .filter(|n| n.ends_with(".manifest.jsonl"))
        .count();
    assert_eq!(
        manifests,
        2,
        "KEEP=1 leaves one per series: {:?}",
        names(&backups)
    );
    let text = fs::read_to_string(&prom).unwrap();
    assert!(text.contains("ops_check_status"), "{text}");

    let log = tmp.path().join("maintenance.jsonl");
    let out = script(
        "maintenance.sh",
        &[
            ("DATABASE_URL", url.as_str()),
            ("BACKUP_DIR", backups.to_str().unwrap()),
            ("RECORDS", log.to_str().unwrap()),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_logged(&out.stderr, "maintenance.sh");
    assert!(
        !out.stderr.contains("garbage"),
        "no SNAPSHOT_REPO, no gc: {}",
        out.stderr
    );
    let done = records(&log);
    let table = done
        .iter()
        .find(|r| r["type"] == "compact" && r["target"] == "public.t")
        .unwrap();
    assert_eq!(table["action"], "vacuumed", "{table}");
    assert!(done.iter().any(|r| r["type"] == "check"), "health ran");
    let tested = done.iter().find(|r| r["type"] == "backup").unwrap();
    assert_eq!(
        tested["verify"]["level"], "restore",
        "the newest database backup: {tested}"
    );
    assert_eq!(tested["verify"]["ok"], true, "{tested}");

    // A snapshot repository that is not there fails the run, after the rest.
    let out = script(
        "maintenance.sh",
        &[
            ("BACKUP_DIR", backups.to_str().unwrap()),
            (
                "SNAPSHOT_REPO",
                tmp.path().join("no-repo").to_str().unwrap(),
            ),
            ("RESTORE_TEST", "0"),
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains("no-repo");
}

#[test]
fn backup_reports_a_missing_source_and_still_backs_up_the_others() {
    let tmp = tempdir().unwrap();
    let data = data_tree(tmp.path());
    let backups = tmp.path().join("backups");
    let out = script("backup.sh", &[("BACKUP_DIR", backups.to_str().unwrap())]);
    assert_eq!(out.code, 2, "{out:?}");
    out.stderr_contains("nothing to back up");
    let dirs = format!(
        "{} {}",
        tmp.path().join("missing").display(),
        data.display()
    );
    let out = script(
        "backup.sh",
        &[
            ("BACKUP_DIR", backups.to_str().unwrap()),
            ("DATA_DIRS", &dirs),
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains("error: the backup of");
    assert_eq!(
        out.records()
            .iter()
            .filter(|r| r["type"] == "backup")
            .count(),
        1
    );
}

#[test]
fn backup_gives_two_data_dirs_of_one_base_name_their_own_series_or_refuses() {
    let tmp = tempdir().unwrap();
    let (a, b) = (tmp.path().join("svcA/data"), tmp.path().join("svcB/data"));
    for dir in [&a, &b] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("x.txt"), dir.to_str().unwrap()).unwrap();
    }
    let backups = tmp.path().join("backups");
    let run = |dirs: String| {
        script(
            "backup.sh",
            &[
                ("BACKUP_DIR", backups.to_str().unwrap()),
                ("DATA_DIRS", &dirs),
                ("KEEP", "1"),
                ("DISK_WARN", "100%"),
                ("DISK_CRIT", "100%"),
            ],
        )
    };
    let out = run(format!("{} {}", a.display(), b.display()));
    assert_eq!(out.code, 2, "{out:?}");
    out.stderr_contains("would both be series data");
    assert!(
        names(&backups).is_empty(),
        "nothing written: {:?}",
        names(&backups)
    );
    let named = format!("svcA-data={} svcB-data={}", a.display(), b.display());
    for _ in 0..2 {
        let out = run(named.clone());
        assert_eq!(out.code, 0, "{out:?}");
    }
    let listed = bin_dir().join("ops-backup");
    let out = Command::new(listed)
        .arg("list")
        .arg(&backups)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let series: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut names: Vec<&str> = series.iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["svcA-data", "svcB-data"], "KEEP=1 kept one of each");
}

#[test]
fn backup_fails_when_the_backup_filesystem_is_fuller_than_disk_crit() {
    let tmp = tempdir().unwrap();
    let data = data_tree(tmp.path());
    let backups = tmp.path().join("backups");
    let dir = backups.to_str().unwrap();
    let with = |warn, crit| {
        script(
            "backup.sh",
            &[
                ("BACKUP_DIR", dir),
                ("DATA_DIRS", data.to_str().unwrap()),
                ("DISK_WARN", warn),
                ("DISK_CRIT", crit),
            ],
        )
    };
    let out = with("0%", "0%");
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains("health: critical");
    let disk = out
        .records()
        .into_iter()
        .find(|r| r["check"] == "disk")
        .unwrap();
    assert_eq!(disk["status"], "crit", "{disk}");
    let out = with("0%", "100%");
    assert_eq!(out.code, 0, "a warning does not fail the run: {out:?}");
    out.stderr_contains("health: warning");
}

fn owned<'a>(vars: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn compacted(out: &Outcome) -> Vec<String> {
    out.records()
        .into_iter()
        .filter(|r| r["type"] == "compact")
        .map(|r| format!("{} {}", r["action"].as_str().unwrap(), r["target"]))
        .collect()
}

/// Gravix's warehouse was compressed to .parquet.zst, which its query
/// engine cannot read: compression is for the directories named for it,
/// and never touches columnar or compressed formats.
#[test]
fn cleanup_ages_out_raw_data_and_compresses_only_the_directories_named() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let warehouse = tmp.path().join("warehouse");
    aged(&raw.join("today.jsonl"), 0);
    aged(&raw.join("last-week.jsonl"), 10);
    aged(&raw.join("last-year.jsonl"), 400);
    aged(&raw.join("rollup.parquet"), 10);
    aged(&raw.join("chart.png"), 10);
    aged(&warehouse.join("part-0.parquet"), 10);
    aged(&warehouse.join("part-1.parquet"), 400);
    aged(&warehouse.join("notes.csv"), 10);
    let vars = |dry: &str| {
        vec![
            (
                "RAW_DIRS",
                format!("{} {}", raw.display(), warehouse.display()),
            ),
            ("COMPRESS_DIRS", raw.display().to_string()),
            ("COMPRESS_AFTER", "7d".to_owned()),
            ("DELETE_AFTER", "90d".to_owned()),
            ("DRY_RUN", dry.to_owned()),
        ]
    };
    let before = (names(&raw), names(&warehouse));
    let out = script("cleanup-data.sh", &owned(&vars("1")));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        (names(&raw), names(&warehouse)),
        before,
        "a dry run changes nothing"
    );
    let out = script("cleanup-data.sh", &owned(&vars("0")));
    assert_eq!(out.code, 0, "{out:?}");
    assert_logged(&out.stderr, "cleanup-data.sh");
    assert_eq!(
        names(&raw),
        [
            "chart.png",
            "last-week.jsonl.zst",
            "rollup.parquet",
            "today.jsonl"
        ]
    );
    assert_eq!(names(&warehouse), ["notes.csv", "part-0.parquet"]);
    let done = compacted(&out);
    assert_eq!(
        done.len(),
        2,
        "last week's compressed, today's skipped: {done:?}"
    );
    assert!(
        done[0].starts_with("compressed ") && done[0].contains("last-week.jsonl"),
        "{done:?}"
    );
    let out = script(
        "cleanup-data.sh",
        &[("RAW_DIRS", tmp.path().join("nope").to_str().unwrap())],
    );
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains("no such file or directory");
}

/// The header promises the newest file of each directory stays, however
/// old; COMPRESS_AFTER=never (or empty) turns compression off, not deletion.
#[test]
fn cleanup_keeps_the_newest_file_and_deletes_without_compressing() {
    let tmp = tempdir().unwrap();
    let lonely = tmp.path().join("lonely");
    let stale = tmp.path().join("stale");
    aged(&lonely.join("only.jsonl"), 400);
    aged(&stale.join("newest.jsonl"), 400);
    aged(&stale.join("older.jsonl"), 500);
    let dirs = format!("{} {}", lonely.display(), stale.display());
    for (compress_after, oldest) in [("never", "older.jsonl"), ("", "oldest.jsonl")] {
        aged(&stale.join(oldest), 600);
        let vars = vec![
            ("RAW_DIRS", dirs.clone()),
            ("COMPRESS_DIRS", dirs.clone()),
            ("COMPRESS_AFTER", compress_after.to_owned()),
            ("DELETE_AFTER", "90d".to_owned()),
        ];
        let out = script("cleanup-data.sh", &owned(&vars));
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            names(&lonely),
            ["only.jsonl"],
            "COMPRESS_AFTER={compress_after:?}"
        );
        assert_eq!(
            names(&stale),
            ["newest.jsonl"],
            "COMPRESS_AFTER={compress_after:?}"
        );
        assert_eq!(compacted(&out), Vec::<String>::new(), "{}", out.stdout);
    }
}

#[test]
fn make_targets_work_end_to_end() {
    let pg = cluster();
    pg.create_db("make_app");
    pg.psql(
        "make_app",
        "CREATE TABLE posts (id int PRIMARY KEY); INSERT INTO posts SELECT generate_series(1, 100)",
    );
    let url = pg.url("make_app");
    let tmp = tempdir().unwrap();
    let data = data_tree(tmp.path());
    let backups = tmp.path().join("backups");
    let dir = format!("BACKUP_DIR={}", backups.display());
    let db = format!("DATABASE_URL={url}");
    let ok = |args: &[&str]| {
        let out = make(args);
        assert_eq!(out.code, 0, "make {args:?}: {out:?}");
        out
    };
    ok(&["backup-now", &dir, &format!("SOURCE={}", data.display())]);
    let done = ok(&["backup-now", &dir, &db]);
    let said = done.stdout.trim_end();
    let expected = format!("Backup completed: {}/make_app_", backups.display());
    assert!(said.starts_with(&expected), "{said}");
    assert!(
        said.ends_with(" bytes)") && said.contains("(size="),
        "{said}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    ok(&["backup-now", &dir, &db, "KEEP=1"]);
    let kept = names(&backups)
        .into_iter()
        .filter(|n| n.starts_with("make_app_") && n.ends_with(".manifest.jsonl"))
        .count();
    assert_eq!(kept, 1, "backup-now KEEP=1: {:?}", names(&backups));
    let listed = ok(&["backups-ls", &dir]);
    listed.stdout_contains("make_app_").stdout_contains("data_");
    ok(&["backups-tidy", &dir, "KEEP=1"]);
    let left = names(&backups)
        .into_iter()
        .filter(|n| n.ends_with(".manifest.jsonl"))
        .count();
    assert_eq!(left, 2, "{:?}", names(&backups));
    let volumes = tmp.path().join("volumes");
    ok(&[
        "backups-snapshot-volume",
        &dir,
        &format!("VOLUME_DIR={}", volumes.display()),
    ]);
    assert_eq!(
        names(&volumes)
            .iter()
            .filter(|n| n.ends_with(".tar.zst"))
            .count(),
        1
    );
    std::thread::sleep(Duration::from_millis(1100));
    ok(&["backup-now", &dir, &format!("SOURCE={}", data.display())]);
    let tested = ok(&["restore-test", &dir, &db]);
    assert!(
        tested.stdout.contains("make_app_") && tested.stdout.contains("ok (restore"),
        "the newest database backup, not the newest backup: {}",
        tested.stdout
    );
    let checks = tmp.path().join("integrity.sql");
    fs::write(
        &checks,
        "# comment\n\nmissing_posts=SELECT 100 - count(*) FROM posts\n",
    )
    .unwrap();
    let checked = ok(&[
        "integrity-check",
        &db,
        &format!("INTEGRITY_SQL={}", checks.display()),
    ]);
    checked.stdout_contains("missing_posts");
    let out = make(&["integrity-check", &db, "INTEGRITY_SQL=/nonexistent.sql"]);
    assert_eq!(out.code, 2, "{out:?}");
    out.stderr_contains("/nonexistent.sql not found");
    let bloat = ok(&["integrity-bloat", &db]);
    bloat
        .stdout_contains("public.posts")
        .stdout_contains("BLOAT");
    let secret = format!(
        "DATABASE_URL={}",
        pg.secret_url("make_app", SECRET_PASSWORD)
    );
    let quiet = ok(&["integrity-bloat", &secret]);
    assert!(
        !quiet.stdout.contains(SECRET_PASSWORD) && !quiet.stderr.contains(SECRET_PASSWORD),
        "make echoed the password: {quiet:?}"
    );
    let out = make(&["integrity-bloat"]);
    assert_eq!(out.code, 2, "{out:?}");
    // This machine's own disk may be fuller than the default 80%.
    ok(&["health", &dir, "DISK_WARN=100%", "DISK_CRIT=100%"]);
    ok(&["maintenance", &dir, &db]);
    let dest = tmp.path().join("dest");
    ok(&[
        "install",
        &format!("DESTDIR={}", dest.display()),
        "PREFIX=/usr",
    ]);
    for path in [
        "usr/bin/ops-compact",
        "usr/share/man/man1/ops-compact.1",
        "usr/share/man/man7/ops.7",
        "usr/lib/ops/maintenance.sh",
        "usr/lib/ops/examples/integrity.sql",
        "usr/share/bash-completion/completions/ops-prune",
        "usr/share/zsh/site-functions/_ops-prune",
        "usr/share/fish/vendor_completions.d/ops-prune.fish",
    ] {
        assert!(dest.join(path).exists(), "make install: no {path}");
    }
}

#[test]
fn make_demo_runs() {
    if !bin_dir().join("make-sled-db").exists() {
        panic!("make-sled-db not built; run `cargo build --workspace`");
    }
    let out = make(&["demo"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout_contains("ops-compact sled:app.db");
}

#[test]
fn integrity_targets_find_repair_in_batches_and_report_the_tables() {
    let pg = cluster();
    pg.create_db("make_integrity");
    pg.psql(
        "make_integrity",
        "CREATE TABLE subreddits (id int PRIMARY KEY); \
         CREATE TABLE posts (id int PRIMARY KEY, subreddit_id int); \
         CREATE TABLE comments (id int PRIMARY KEY, post_id int); \
         CREATE TABLE graph_nodes (id text PRIMARY KEY); \
         CREATE TABLE graph_links (source text, target text); \
         INSERT INTO subreddits VALUES (1); \
         INSERT INTO posts SELECT g, CASE WHEN g <= 5 THEN 1 ELSE 2 END FROM generate_series(1, 25) g; \
         INSERT INTO comments SELECT g, g FROM generate_series(1, 40) g; \
         INSERT INTO graph_nodes VALUES ('a'), ('b'), ('lonely'); \
         INSERT INTO graph_links VALUES ('a', 'b'), ('a', 'gone');",
    );
    let db = format!("DATABASE_URL={}", pg.url("make_integrity"));
    let count = |table: &str| {
        pg.psql("make_integrity", &format!("SELECT count(*) FROM {table}"))
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    let out = make(&["integrity-check", &db]);
    assert_ne!(out.code, 0, "problems found: {out:?}");
    for name in ["posts", "comments", "graph-links", "graph-nodes"] {
        assert!(out.stdout.contains(name), "{name}: {}", out.stdout);
    }

    let planned = make(&["integrity-clean-dry-run", &db, "BATCH=10"]);
    assert_ne!(planned.code, 0, "the problems are still there: {planned:?}");
    planned
        .stdout_contains("would repair posts = 20")
        .stdout_contains("(about 2");
    assert_eq!((count("posts"), count("comments")), (25, 40), "dry run");

    let posts = make(&["integrity-clean", &db, "TYPE=posts", "BATCH=8"]);
    posts.stdout_contains("batch 3: 4 row(s) changed");
    posts.stdout_lacks("would");
    assert_eq!((count("posts"), count("comments")), (5, 40), "posts only");

    make(&["integrity-clean", &db, "TYPE=all", "BATCH=5000"]);
    assert_eq!(
        (
            count("comments"),
            count("graph_links"),
            count("graph_nodes")
        ),
        (5, 1, 2),
        "comments of the removed posts, the link to a missing node, the lonely node"
    );
    let clean = make(&["integrity-check", &db]);
    clean.stdout_lacks("WARN").stdout_lacks("warn");

    let out = make(&["integrity-clean", &db, "TYPE=users"]);
    assert_eq!(out.code, 2, "{out:?}");
    out.stderr_contains("no check named users")
        .stderr_contains("graph-links");

    let stats = make(&["integrity-stats", &db]);
    assert_eq!(stats.code, 0, "{stats:?}");
    let posts_row = stats
        .stdout
        .lines()
        .find(|l| l.contains("public.posts"))
        .unwrap_or_else(|| panic!("{}", stats.stdout));
    let cells: Vec<&str> = posts_row.split('|').map(str::trim).collect();
    assert_eq!(cells[1], "5", "exact row count: {posts_row}");
    stats
        .stdout_contains("index_size")
        .stdout_contains("make_integrity");
}

#[test]
fn backup_sh_encrypts_to_recipients_file_and_verifies_without_the_key() {
    let tmp = tempdir().unwrap();
    let data = data_tree(tmp.path());
    let backups = tmp.path().join("backups");
    let log = tmp.path().join("records.jsonl");
    let key = tmp.path().join("backup.key");
    let keygen = Command::new(bin_dir().join("ops-backup"))
        .args(["keygen", "--output"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let recipients = tmp.path().join("recipients");
    fs::write(&recipients, &keygen.stdout).unwrap();
    let vars = [
        ("DATA_DIRS", data.to_str().unwrap()),
        ("BACKUP_DIR", backups.to_str().unwrap()),
        ("RECIPIENTS_FILE", recipients.to_str().unwrap()),
        ("RECORDS", log.to_str().unwrap()),
        ("DISK_WARN", "100%"),
        ("DISK_CRIT", "100%"),
    ];
    let run = script("backup.sh", &vars);
    assert_eq!(run.code, 0, "{run:?}");
    let made: Vec<Value> = records(&log)
        .into_iter()
        .filter(|r| r["type"] == "backup")
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["format"], "tar.zst.age");
    assert_eq!(made[0]["verify"]["ok"], true);
    assert_eq!(made[0]["verify"]["level"], "quick");
}
