//! ops-health's local checks (--disk, --path, --backups, --http), --fix,
//! and its three output formats, against real filesystems, backup
//! directories and a local HTTP server.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ops_tests::{bin_dir, dated_backups, is_root, ops, sh, Outcome, SmallDisk};
use serde_json::Value;
use tempfile::tempdir;

fn health(args: &[&str]) -> Outcome {
    ops("ops-health").args(args).run()
}

/// Thresholds the machine's own disk cannot reach: it may be any share
/// full, and tests that check it alongside something else need it ok.
const ANY_FULLNESS: [&str; 4] = ["--disk-warn", "100%", "--disk-crit", "100%"];

/// ops-health with `args`, then the thresholds of [`ANY_FULLNESS`].
fn health_any_fullness(args: &[&str]) -> Outcome {
    ops("ops-health").args(args).args(ANY_FULLNESS).run()
}

fn only(out: &Outcome, check: &str) -> Vec<Value> {
    out.records()
        .into_iter()
        .filter(|r| r["check"] == check)
        .collect()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn usage_errors_exit_unknown_with_what_to_do() {
    let out = health(&[]).fails_with(3);
    out.stderr_contains("no check given");
    health(&["--sql", "x=SELECT 1", "--disk", "/"]).fails_with(3);
    let out = health(&["--disk", "/", "--prometheus-file", "/tmp/x.prom"]).fails_with(3);
    out.stderr_contains("--format prometheus");
    health(&["--disk", "/", "--disk-warn", "120%"]).fails_with(3);
    assert!(health(&["--help"]).success().stdout.contains("--max-age"));
}

#[test]
fn disk_is_ok_then_warn_then_crit_as_a_filesystem_fills() {
    let tmp = tempdir().unwrap();
    let any = health_any_fullness(&["--disk", s(tmp.path())])
        .success()
        .record();
    assert!(any["metrics"]["size_bytes"].as_f64().unwrap() > 0.0);
    assert!(any["metrics"]["inodes_used_percent"].is_number());
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let ok = health(&["--disk", s(&disk.path)]).success().record();
    assert_eq!(ok["status"], "ok");
    let size = 1024 * 1024;
    fs::write(disk.path.join("a"), vec![1u8; size * 85 / 100]).unwrap();
    let warn = health(&["--disk", s(&disk.path)]).fails_with(1).record();
    assert_eq!(warn["status"], "warn");
    assert!(
        warn["message"].as_str().unwrap().contains("warn at 80%"),
        "{warn}"
    );
    fs::write(disk.path.join("b"), vec![1u8; size * 10 / 100]).unwrap();
    let crit = health(&["--disk", s(&disk.path)]).fails_with(2).record();
    assert_eq!(crit["status"], "crit");
    let lower = health(&[
        "--disk",
        s(&disk.path),
        "--disk-crit",
        "99%",
        "--disk-warn",
        "98%",
    ]);
    assert_eq!(lower.fails_with(0).record()["status"], "ok");
}

#[test]
fn disk_and_path_that_cannot_be_looked_at_are_unknown_or_crit() {
    let tmp = tempdir().unwrap();
    let missing = tmp.path().join("missing");
    assert_eq!(
        health(&["--disk", s(&missing)]).fails_with(2).record()["status"],
        "crit"
    );
    if !is_root() {
        return;
    }
    let private = tmp.path().join("private");
    fs::create_dir(&private).unwrap();
    fs::create_dir(private.join("inside")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let out = sh("exec setpriv --reuid=nobody --regid=nogroup --clear-groups \"$0\" \"$@\"")
        .arg(bin_dir().join("ops-health"))
        .args([
            "--path",
            s(&private.join("inside")),
            "--disk",
            s(&private.join("inside")),
        ])
        .run()
        .fails_with(3);
    for record in out.records() {
        assert_eq!(record["status"], "unknown", "{record}");
        assert!(
            record["message"].as_str().unwrap().contains("denied"),
            "{record}"
        );
    }
}

#[test]
fn path_exists_has_the_right_type_and_can_be_written() {
    let tmp = tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let dir_arg = format!("{}/", tmp.path().display());
    let out = health(&["--path", &dir_arg, "--path", s(&file)]).success();
    assert!(
        out.records().iter().all(|r| r["status"] == "ok"),
        "{}",
        out.stdout
    );
    let wrong = format!("{}/", file.display());
    let out = health(&["--path", &wrong]).fails_with(2);
    assert!(out.record()["message"]
        .as_str()
        .unwrap()
        .contains("not a directory"));
    let missing = tmp.path().join("nope");
    let out = health(&["--path", s(&missing)]).fails_with(2);
    assert!(out.record()["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    if is_root() {
        let locked = tmp.path().join("locked");
        fs::create_dir(&locked).unwrap();
        let out = sh("exec setpriv --reuid=nobody --regid=nogroup --clear-groups \"$0\" \"$@\"")
            .arg(bin_dir().join("ops-health"))
            .args(["--path", s(&locked)])
            .run()
            .fails_with(1);
        assert!(out.record()["message"]
            .as_str()
            .unwrap()
            .contains("cannot write"));
    }
}

fn hours_ago(hours: i64) -> String {
    jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(hours))
        .unwrap()
        .to_string()
}

#[test]
fn backups_fresh_and_verified_are_ok_per_series() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &[&hours_ago(30), &hours_ago(2)]);
    dated_backups(&backups, "uploads", &[&hours_ago(3)]);
    ops("ops-verify").arg(&backups).run().success();
    let out = health(&["--backups", s(&backups)]).success();
    let records = only(&out, "backups");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["name"], "db");
    assert_eq!(records[0]["metrics"]["stored"], 2.0);
    assert_eq!(records[0]["metrics"]["verify_ok"], 1.0);
    let age = records[0]["metrics"]["newest_age_seconds"]
        .as_f64()
        .unwrap();
    assert!((7190.0..7300.0).contains(&age), "{age}");
    assert!(records[0]["message"]
        .as_str()
        .unwrap()
        .contains("verified ok (full)"));
}

#[test]
fn a_stale_or_failed_newest_backup_is_critical() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &[&hours_ago(30)]);
    let out = health(&["--backups", s(&backups)]).fails_with(2);
    let message = out.record()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("older than --max-age 1day 2h"),
        "{message}"
    );
    health(&["--backups", s(&backups), "--max-age", "2d"]).success();
    let artifact = backups.join(format!("{}.tar.zst", ids[0]));
    let mut bytes = fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&artifact, bytes).unwrap();
    ops("ops-verify").arg(&artifact).run().fails_with(1);
    let out = health(&["--backups", s(&backups), "--max-age", "2d"]).fails_with(2);
    assert!(out.record()["message"]
        .as_str()
        .unwrap()
        .contains("verification FAILED"));
}

#[test]
fn an_empty_or_missing_backup_directory_is_critical() {
    let tmp = tempdir().unwrap();
    let out = health(&["--backups", s(tmp.path())]).fails_with(2);
    assert!(out.record()["message"]
        .as_str()
        .unwrap()
        .contains("no backups in"));
    health(&["--backups", s(&tmp.path().join("none"))]).fails_with(2);
}

#[test]
fn leftovers_warn_and_fix_removes_only_old_temporary_files() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &[&hours_ago(1)]);
    let old = backups.join("db_20260101_000000.tar.zst.ops-tmp");
    let young = backups.join("db_20260102_000000.tar.zst.ops-tmp");
    fs::write(&old, "partial").unwrap();
    fs::write(&young, "partial").unwrap();
    let stamped = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(stamped.success());
    fs::write(backups.join("db_20250101_000000.tar.zst"), "orphan").unwrap();
    let out = health(&["--backups", s(&backups)]).fails_with(1);
    let leftovers = only(&out, "backups").pop().unwrap();
    assert_eq!(leftovers["status"], "warn");
    assert_eq!(leftovers["metrics"]["temp_files"], 2.0);
    assert_eq!(leftovers["metrics"]["orphan_artifacts"], 1.0);

    let holder = Command::new("flock")
        .args(["--shared", "--no-fork"])
        .arg(backups.join(".ops-lock"))
        .args(["sleep", "30"])
        .spawn();
    let mut holder = holder.unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = health(&["--backups", s(&backups), "--fix"]).fails_with(1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(only(&out, "fix")[0]["message"]
        .as_str()
        .unwrap()
        .contains("not touched"));
    assert!(old.exists());

    let out = health(&["--backups", s(&backups), "--fix", "--dry-run"]).fails_with(1);
    let fixes = only(&out, "fix");
    assert_eq!(fixes.len(), 1, "{}", out.stdout);
    assert!(fixes[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("would remove a temporary file"));
    assert!(old.exists(), "--dry-run removes nothing");

    let out = health(&["--backups", s(&backups), "--fix"]).fails_with(1);
    let fixes = only(&out, "fix");
    assert_eq!(fixes.len(), 1, "{}", out.stdout);
    assert_eq!(fixes[0]["target"], s(&old));
    assert!(fixes[0]["message"]
        .as_str()
        .unwrap()
        .contains("removed a temporary file"));
    assert!(!old.exists());
    assert!(
        young.exists(),
        "a young temporary file may belong to a running backup"
    );
    let leftovers = only(&out, "backups").pop().unwrap();
    assert_eq!(leftovers["metrics"]["temp_files"], 1.0);
}

/// A one-shot HTTP server answering `status` (or never, for `None`).
fn http_server(status: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            match status {
                Some(status) => {
                    let body = "fine";
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                None => std::thread::sleep(Duration::from_secs(30)),
            }
        }
    });
    url
}

#[test]
fn http_answers_are_ok_crit_or_missing() {
    let ok = health(&["--http", &http_server(Some("200 OK"))])
        .success()
        .record();
    assert_eq!(ok["metrics"]["status_code"], 200.0);
    assert!(ok["metrics"]["latency_ms"].as_f64().unwrap() < 1000.0);
    let out = health(&["--http", &http_server(Some("500 Internal Server Error"))]).fails_with(2);
    assert!(out.record()["message"].as_str().unwrap().contains("500"));
    let silent = http_server(None);
    let started = std::time::Instant::now();
    let out = health(&["--http", &silent, "--timeout", "1s"]).fails_with(2);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        out.record()["message"]
            .as_str()
            .unwrap()
            .contains("no answer"),
        "{}",
        out.stdout
    );
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    health(&["--http", &format!("http://{refused}/")]).fails_with(2);
    let out = health(&["--http", "gopher://127.0.0.1:1/"]).fails_with(3);
    assert!(out.record()["message"].as_str().unwrap().contains("gopher"));
    let out = health(&["--http", "localhost:8080/health"]).fails_with(3);
    let message = out.record()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("write http://localhost:8080/health"),
        "{message}"
    );
}

#[test]
fn prometheus_output_passes_promtool_and_is_written_atomically() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &[&hours_ago(1)]);
    let args = [
        "--disk",
        s(tmp.path()),
        "--backups",
        s(&backups),
        "--format",
        "prometheus",
    ];
    let text = health_any_fullness(&args).success().stdout;
    assert!(text.contains(&format!(
        "ops_check_status{{check=\"disk\",target=\"{}\"}} 0",
        tmp.path().display()
    )));
    assert!(
        text.contains("ops_backup_newest_timestamp_seconds{name=\"db\""),
        "{text}"
    );
    assert!(text.contains("# TYPE ops_disk_used_percent gauge"));
    let file = tmp.path().join("ops.prom");
    ops("ops-health")
        .args(args)
        .args(ANY_FULLNESS)
        .arg("--prometheus-file")
        .arg(&file)
        .run()
        .success();
    assert_eq!(
        fs::read_to_string(&file).unwrap().lines().count(),
        text.lines().count()
    );
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ops-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let unwritable = tmp.path().join("no-such-dir/ops.prom");
    let out = ops("ops-health")
        .args(args)
        .args(ANY_FULLNESS)
        .arg("--prometheus-file")
        .arg(&unwritable)
        .run()
        .fails_with(3);
    out.stderr_contains(&format!(
        "ops-health: error: cannot write the Prometheus file {}",
        unwritable.display()
    ));
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut promtool) => {
            promtool
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let status = promtool.wait().unwrap();
            assert!(
                status.success(),
                "promtool check metrics failed on:\n{text}"
            );
        }
        Err(_) => {
            eprintln!("promtool not installed (apt-get install prometheus); skipped its check");
        }
    }
}

#[test]
fn nagios_output_has_a_status_line_with_perfdata_and_the_exit_code() {
    let tmp = tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let out = health_any_fullness(&[
        "--disk",
        s(tmp.path()),
        "--path",
        s(&missing),
        "--format",
        "nagios",
    ])
    .fails_with(2);
    let first = out.stdout.lines().next().unwrap();
    assert!(first.starts_with("OPS CRITICAL - path "), "{first}");
    assert!(
        first.contains(&format!(
            "| 'disk {} available_bytes'=",
            tmp.path().display()
        )),
        "{first}"
    );
    out.stdout_contains("\nOK disk ");
    let ok = health_any_fullness(&["--disk", s(tmp.path()), "--format", "nagios"]).success();
    assert!(
        ok.stdout.starts_with("OPS OK - 1 checks ok | "),
        "{}",
        ok.stdout
    );
}

#[test]
fn on_a_terminal_the_table_ends_with_a_verdict() {
    let tmp = tempdir().unwrap();
    let out = health_any_fullness(&["--disk", s(tmp.path()), "--human"]).success();
    assert!(out.stdout.starts_with("CHECK"), "{}", out.stdout);
    assert_eq!(out.stdout.lines().last(), Some("healthy"));
    let out = health_any_fullness(&[
        "--path",
        s(&tmp.path().join("x")),
        "--disk",
        s(tmp.path()),
        "--human",
    ])
    .fails_with(2);
    assert_eq!(out.stdout.lines().last(), Some("unhealthy"));
}

#[test]
fn a_check_that_does_not_finish_in_time_is_unknown_and_does_not_hold_up_the_others() {
    let tmp = tempdir().unwrap();
    // Accepts connections and never says a word: a hung server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let _held: Vec<_> = listener.incoming().collect();
    });
    let started = std::time::Instant::now();
    let out = health_any_fullness(&[
        "--postgres",
        &format!("postgres://app@127.0.0.1:{port}/app"),
        "--disk",
        s(tmp.path()),
        "--timeout",
        "1s",
    ])
    .fails_with(3);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let postgres = only(&out, "postgres").pop().unwrap();
    assert_eq!(postgres["status"], "unknown");
    assert!(postgres["message"]
        .as_str()
        .unwrap()
        .contains("did not finish within 1s"));
    assert_eq!(only(&out, "disk")[0]["status"], "ok");
}
