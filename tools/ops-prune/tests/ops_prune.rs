//! ops-prune as its man page describes it: rules, inputs, safety, output.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ops_tests::{chained_backups, dated_backups, names, ops, sh, Outcome};
use serde_json::Value;
use tempfile::tempdir;

/// Daily backups at 03:00 UTC for `days` days, the last on 2026-11-22.
fn nightly(days: i64) -> Vec<String> {
    let last: jiff::Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
    (0..days)
        .rev()
        .map(|n| {
            last.checked_sub(jiff::SignedDuration::from_hours(24 * n))
                .unwrap()
                .to_string()
        })
        .collect()
}

fn strs(times: &[String]) -> Vec<&str> {
    times.iter().map(String::as_str).collect()
}

fn prune(dir: &Path, rules: &[&str]) -> Outcome {
    ops("ops-prune")
        .args(rules)
        .args(["--now", "2026-11-22T12:00:00Z", "--utc"])
        .arg(dir)
        .run()
}

/// Ids of the records with the given action.
fn ids_with(records: &[Value], action: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["prune"]["action"] == action)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn listed(dir: &Path) -> Vec<String> {
    ops("ops-backup")
        .arg("list")
        .arg(dir)
        .run()
        .success()
        .records()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_verifies(dir: &Path) {
    ops("ops-verify").arg(dir).run().success();
}

#[test]
fn help_describes_every_rule() {
    let out = ops("ops-prune").arg("--help").run().success();
    for flag in [
        "--keep-last",
        "--keep-daily",
        "--keep-within-weekly",
        "--older-than",
        "--dry-run",
        "--group-by",
        "--allow-remove-all",
        "--lock-wait",
    ] {
        assert!(out.stdout.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn without_a_rule_nothing_is_pruned_and_the_user_is_told_how() {
    let tmp = tempdir().unwrap();
    dated_backups(&tmp.path().join("backups"), "db", &strs(&nightly(3)));
    let out = ops("ops-prune")
        .arg(tmp.path().join("backups"))
        .run()
        .fails_with(2);
    out.stderr_contains("no rule given");
    assert_eq!(listed(&tmp.path().join("backups")).len(), 3);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(2)));
    let cases: [(&[&str], &str); 5] = [
        (
            &["--keep-within", "6m"],
            "ambiguous: write months as 6months",
        ),
        (&["--keep-last", "many"], "`unlimited`"),
        (&["--now", "yesterday", "--keep-last", "1"], "RFC 3339"),
        (
            &["--keep-last", "1", "/no/such/dir"],
            "not a backup directory",
        ),
        (
            &["--files", "/no/such/file", "--older-than", "1d"],
            "no such file",
        ),
    ];
    for (args, expected) in cases {
        let out = ops("ops-prune").args(args).run().fails_with(2);
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
    }
    let file = backups.read_dir().unwrap().next().unwrap().unwrap().path();
    let out = ops("ops-prune")
        .arg("--keep-last=1")
        .arg(&file)
        .run()
        .fails_with(2);
    out.stderr_contains("use --files");
    let out = ops("ops-prune")
        .args(["--keep-daily", "1"])
        .arg(&backups)
        .env("TZ", "Mars/Olympus_Mons")
        .run()
        .fails_with(2);
    out.stderr_contains("TZ=Mars/Olympus_Mons");
    assert_eq!(listed(&backups).len(), 2);
}

#[test]
fn keep_last_7_keeps_the_seven_newest_and_deletes_the_rest_completely() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "reddit_cluster", &strs(&nightly(10)));
    ops("ops-verify").arg(&backups).run().success();
    let out = prune(&backups, &["--keep-last", "7"]).success();
    let records = out.records();
    assert_eq!(ids_with(&records, "remove"), ids[..3]);
    assert_eq!(ids_with(&records, "keep"), ids[3..]);
    assert!(records.iter().all(|r| r["prune"]["done"] == true));
    assert_eq!(listed(&backups), ids[3..]);
    let left = names(&backups).join(" ");
    for gone in &ids[..3] {
        assert!(!left.contains(gone.as_str()), "{gone} left behind: {left}");
    }
    out.stderr_contains("kept 7, removed 3, freed");
    assert_verifies(&backups);
}

#[test]
fn grandfather_father_son_keeps_dailies_weeklies_and_monthlies() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(60)));
    let out = prune(
        &backups,
        &[
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
        ],
    )
    .success();
    let kept: Vec<String> = ids_with(&out.records(), "keep")
        .iter()
        .map(|id| id[3..11].to_owned())
        .collect();
    // 7 days; Sundays of the 3 weeks before; the ends of October and
    // September; and the oldest, as the monthly quota is not used up.
    assert_eq!(
        kept,
        [
            "20260924", "20260930", "20261031", "20261101", "20261108", "20261115", "20261116",
            "20261117", "20261118", "20261119", "20261120", "20261121", "20261122"
        ]
    );
    let oldest = &out.records()[0];
    assert_eq!(
        oldest["prune"]["reasons"],
        serde_json::json!(["oldest monthly 2026-09 (fewer than 12 months have items)"])
    );
    assert_verifies(&backups);
}

#[test]
fn dry_run_says_what_would_go_and_why_and_changes_nothing() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(40)));
    let before = names(&backups);
    let out = prune(&backups, &["--keep-within", "30d", "--dry-run"]).success();
    assert_eq!(names(&backups), before);
    let records = out.records();
    assert_eq!(ids_with(&records, "remove"), ids[..10]);
    assert!(records.iter().all(|r| r["prune"]["done"] == false));
    assert_eq!(
        records[0]["prune"]["reasons"],
        serde_json::json!(["within 30d of the newest: before the cutoff 2026-10-23T03:00:00Z"])
    );
    assert_eq!(
        records[39]["prune"]["reasons"],
        serde_json::json!(["within 30d of the newest (after 2026-10-23T03:00:00Z)"])
    );
    out.stderr_contains("dry run: would keep 30 and remove 10");
}

#[test]
fn the_readme_pipeline_backs_up_verifies_and_prunes() {
    let tmp = tempdir().unwrap();
    fs::create_dir(tmp.path().join("data")).unwrap();
    fs::write(tmp.path().join("data/a.txt"), "a").unwrap();
    let old = dated_backups(&tmp.path().join("backups"), "data", &strs(&nightly(5)));
    let out =
        sh("ops-backup create ./data --to backups | ops-verify | ops-prune --keep-last 2 backups")
            .current_dir(tmp.path())
            .run()
            .success();
    let records = out.records();
    assert_eq!(
        records.len(),
        6,
        "the new backup once, then the listed ones"
    );
    assert_eq!(records[0]["verify"]["ok"], true);
    assert_eq!(records[0]["prune"]["action"], "keep");
    assert_eq!(
        ids_with(&records, "keep"),
        [records[0]["id"].as_str().unwrap(), &old[4]]
    );
    assert_eq!(listed(&tmp.path().join("backups")).len(), 2);
    assert_verifies(&tmp.path().join("backups"));
}

#[test]
fn listed_records_on_stdin_and_the_directory_are_the_same_items() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(5)));
    let out = sh("ops-backup list backups | ops-prune --keep-last 3 --json backups | jq -c 'select(.prune.action==\"remove\")'")
        .current_dir(tmp.path())
        .run()
        .success();
    let removed: Vec<String> = out
        .records()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(removed, ids[..2]);
    assert_eq!(listed(&backups), ids[2..]);
}

#[test]
fn records_of_other_types_pass_through_unchanged() {
    let tmp = tempdir().unwrap();
    let line = r#"{"type":"check","v":1,"check":"disk","target":"/","status":"ok","message":"fine","metrics":{}}"#;
    let compact = r#"{"type":"compact","v":1,"target":"/r","kind":"repo","action":"gc","before_bytes":2,"after_bytes":1}"#;
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .stdin(format!("{line}\n{compact}\n"))
        .current_dir(tmp.path())
        .run()
        .success();
    assert_eq!(out.stdout, format!("{line}\n{compact}\n"));
}

#[test]
fn a_malformed_line_deletes_nothing() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(4)));
    let listed_line = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .success()
        .stdout;
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .arg(&backups)
        .stdin(format!("{listed_line}{{\"type\": \"backup\", oops\n"))
        .run()
        .fails_with(2);
    out.stderr_contains("input line 5: malformed JSON");
    assert_eq!(listed(&backups).len(), 4);
}

#[test]
fn the_newest_backup_stays_unless_remove_all_is_allowed() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(3)));
    let out = prune(&backups, &["--older-than", "1h"]).success();
    assert_eq!(ids_with(&out.records(), "keep"), [ids[2].clone()]);
    assert_eq!(
        out.records()[2]["prune"]["reasons"],
        serde_json::json!([
            "the newest good backup of its series (kept unless --allow-remove-all)"
        ])
    );
    prune(&backups, &["--older-than", "1h", "--allow-remove-all"]).success();
    assert!(listed(&backups).is_empty());
}

#[test]
fn a_backup_that_a_kept_one_depends_on_is_kept() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = chained_backups(&backups, "db", &strs(&nightly(4)));
    let out = prune(&backups, &["--keep-last", "1"]).success();
    let records = out.records();
    assert!(ids_with(&records, "remove").is_empty());
    assert_eq!(
        records[2]["prune"]["reasons"],
        serde_json::json!([format!("parent of {}, which is kept", ids[3])])
    );
    assert_eq!(listed(&backups).len(), 4);
}

#[test]
fn a_failed_verification_upstream_stops_pruning_of_that_series() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let db = dated_backups(&backups, "db", &strs(&nightly(4)));
    let files = dated_backups(&backups, "files", &strs(&nightly(4)));
    let newest_db = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .success()
        .records();
    let mut failed = newest_db
        .iter()
        .find(|r| r["id"] == db[3].as_str())
        .unwrap()
        .clone();
    failed["verify"] = serde_json::json!({"ok": false, "level": "full", "time": "2026-11-22T03:10:00Z", "errors": ["sha256 mismatch"]});
    let out = ops("ops-prune")
        .args(["--keep-last", "1", "--now", "2026-11-22T12:00:00Z"])
        .arg(&backups)
        .stdin(format!("{failed}\n"))
        .run()
        .fails_with(1);
    out.stderr_contains(&format!(
        "is not pruned: a record on stdin says {} failed verification",
        db[3]
    ));
    let left = listed(&backups);
    assert!(
        db.iter().all(|id| left.contains(id)),
        "db was pruned: {left:?}"
    );
    assert_eq!(left.iter().filter(|id| id.starts_with("files")).count(), 1);
    assert!(left.contains(&files[3]));
}

#[test]
fn a_backup_that_failed_verification_takes_no_quota_and_is_kept_for_inspection() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(4)));
    let newest = backups.join(format!("{}.tar.zst", ids[3]));
    let mut bytes = fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&newest, bytes).unwrap();
    ops("ops-verify").arg(&newest).run().fails_with(1);
    let out = prune(&backups, &["--keep-last", "1"]).success();
    let records = out.records();
    assert_eq!(ids_with(&records, "keep"), [ids[2].clone(), ids[3].clone()]);
    let reasons = records[3]["prune"]["reasons"][0].as_str().unwrap();
    assert!(
        reasons.contains("not counted towards --keep-*"),
        "{reasons}"
    );
    assert_eq!(
        records[2]["prune"]["reasons"],
        serde_json::json!(["last 1 of 1"])
    );
}

#[test]
fn series_are_pruned_separately_unless_grouping_is_off() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(3)));
    dated_backups(&backups, "uploads", &strs(&nightly(3)));
    let out = prune(&backups, &["--keep-last", "1", "--dry-run"]).success();
    assert_eq!(ids_with(&out.records(), "keep").len(), 2);
    let out = prune(
        &backups,
        &["--keep-last", "1", "--dry-run", "--group-by", "none"],
    )
    .success();
    assert_eq!(ids_with(&out.records(), "keep").len(), 1);
}

#[test]
fn days_are_local_days_and_tz_is_honoured() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    // 03:00 and 23:00 UTC on the 21st: the second is the 22nd in Tokyo.
    let ids = dated_backups(
        &backups,
        "db",
        &[
            "2026-11-21T03:00:00Z",
            "2026-11-21T23:00:00Z",
            "2026-11-22T03:00:00Z",
        ],
    );
    let run = |tz: &str, extra: &[&str]| {
        let out = ops("ops-prune")
            .args([
                "--keep-daily",
                "2",
                "--dry-run",
                "--now",
                "2026-11-23T00:00:00Z",
            ])
            .args(extra)
            .arg(&backups)
            .env("TZ", tz)
            .run()
            .success();
        ids_with(&out.records(), "keep")
    };
    assert_eq!(run("Asia/Tokyo", &[]), [ids[0].clone(), ids[2].clone()]);
    assert_eq!(run("UTC", &[]), [ids[1].clone(), ids[2].clone()]);
    assert_eq!(
        run("Asia/Tokyo", &["--utc"]),
        [ids[1].clone(), ids[2].clone()]
    );
}

fn touch(path: &Path, time: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, time).unwrap();
    let ok = Command::new("touch")
        .arg("-d")
        .arg(time)
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn files_older_than_30d_go_measured_to_the_second() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("data/raw");
    touch(&raw.join("2026-10/old.jsonl"), "2026-10-23T11:59:59Z");
    touch(&raw.join("2026-10/edge.jsonl"), "2026-10-23T12:00:00Z");
    touch(&raw.join("2026-11/new.jsonl"), "2026-11-21T00:00:00Z");
    touch(&raw.join("2026-10/upload.ops-tmp"), "2026-01-01T00:00:00Z");
    let out = ops("ops-prune")
        .args([
            "--files",
            "data/raw",
            "--older-than",
            "30d",
            "--now",
            "2026-11-22T12:00:00Z",
        ])
        .current_dir(tmp.path())
        .run()
        .success();
    let records = out.records();
    assert_eq!(records.len(), 3);
    let removed: Vec<&str> = records
        .iter()
        .filter(|r| r["prune"]["action"] == "remove")
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(removed, ["data/raw/2026-10/old.jsonl"]);
    assert_eq!(records[0]["type"], "file");
    assert!(!raw.join("2026-10/old.jsonl").exists());
    assert!(raw.join("2026-10/edge.jsonl").exists());
    assert!(raw.join("2026-11/new.jsonl").exists());
    assert!(
        raw.join("2026-10/upload.ops-tmp").exists(),
        "a run's temporary file"
    );
}

#[test]
fn a_backup_directory_given_as_files_is_refused() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(3)));
    let out = ops("ops-prune")
        .args(["--older-than", "1h", "--files"])
        .arg(&backups)
        .run()
        .fails_with(2);
    assert!(
        out.stderr
            .contains("holds backups; give it as a backup directory"),
        "{}",
        out.stderr
    );
    assert_eq!(listed(&backups).len(), 3);
}

#[test]
fn legacy_dumps_matched_by_a_glob_keep_the_last_7() {
    let tmp = tempdir().unwrap();
    for day in 1..=10 {
        touch(
            &tmp.path()
                .join(format!("backups/reddit_cluster_202611{day:02}.sql")),
            &format!("2026-11-{day:02}T03:00:00Z"),
        );
    }
    touch(
        &tmp.path().join("backups/notes.txt"),
        "2026-01-01T00:00:00Z",
    );
    let out = ops("ops-prune")
        .args([
            "--files",
            "backups/reddit_cluster_*.sql",
            "--keep-last",
            "7",
        ])
        .current_dir(tmp.path())
        .run()
        .success();
    assert_eq!(out.records().len(), 10);
    let left = names(&tmp.path().join("backups"));
    assert_eq!(left.len(), 8, "{left:?}");
    assert!(left.contains(&"notes.txt".to_owned()));
    assert!(!left.contains(&"reddit_cluster_20261103.sql".to_owned()));
    assert!(left.contains(&"reddit_cluster_20261104.sql".to_owned()));
}

#[test]
fn file_records_on_stdin_are_candidates_by_their_real_mtime() {
    let tmp = tempdir().unwrap();
    touch(&tmp.path().join("old.log"), "2026-01-01T00:00:00Z");
    touch(&tmp.path().join("new.log"), "2026-11-22T00:00:00Z");
    // The records claim the opposite ages; the files themselves decide.
    let input = r#"{"type":"file","v":1,"path":"old.log","time":"2026-11-22T00:00:00Z","bytes":1}
{"type":"file","v":1,"path":"new.log","time":"2020-01-01T00:00:00Z","bytes":1}
{"type":"file","v":1,"path":"gone.log","time":"2020-01-01T00:00:00Z","bytes":1}
"#;
    let out = ops("ops-prune")
        .args(["--older-than", "30d", "--now", "2026-11-22T12:00:00Z"])
        .stdin(input)
        .current_dir(tmp.path())
        .run()
        .success();
    let records = out.records();
    assert_eq!(records[0]["prune"]["action"], "remove");
    assert_eq!(records[1]["prune"]["action"], "keep");
    assert!(
        records[2].get("prune").is_none(),
        "a missing file is passed through"
    );
    out.stderr_contains("gone.log");
    assert!(!tmp.path().join("old.log").exists());
    assert!(tmp.path().join("new.log").exists());
}

#[test]
fn a_record_that_no_longer_matches_its_manifest_deletes_nothing() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(2)));
    let records = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .success()
        .records();
    let mut newest = records[1].clone();
    newest["time"] = Value::from("2020-01-01T00:00:00Z");
    let out = ops("ops-prune")
        .args(["--keep-last", "1"])
        .stdin(format!("{}\n{newest}\n", records[0]))
        .run()
        .fails_with(2);
    assert!(
        out.stderr
            .contains("does not match its manifest (time differs)"),
        "{}",
        out.stderr
    );
    assert_eq!(listed(&backups).len(), 2);
}

#[test]
fn a_held_lock_makes_prune_wait_then_give_up_with_a_clear_message() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(3)));
    let mut holder = Command::new("flock")
        .args(["--shared", "--no-fork"])
        .arg(backups.join(".ops-lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = prune(&backups, &["--keep-last", "1", "--lock-wait", "1s"]).fails_with(1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    out.stderr_contains("is locked by");
    out.stderr_contains("waited 1s");
    assert_eq!(listed(&backups).len(), 3);
    prune(&backups, &["--keep-last", "1", "--lock-wait", "0s"]).success();
    assert_eq!(listed(&backups).len(), 1);
}

#[test]
fn two_prunes_at_once_remove_each_backup_exactly_once() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(12)));
    let mut holder = Command::new("flock")
        .arg(backups.join(".ops-lock"))
        .args(["sleep", "1"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let backups = backups.clone();
            std::thread::spawn(move || prune(&backups, &["--keep-last", "2"]))
        })
        .collect();
    let outcomes: Vec<Outcome> = runs
        .into_iter()
        .map(|r| r.join().unwrap().success())
        .collect();
    holder.wait().unwrap();
    let mut removed: Vec<String> = outcomes
        .iter()
        .flat_map(ops_tests::Outcome::records)
        .filter(|r| r["prune"]["action"] == "remove" && r["prune"]["done"] == true)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    removed.sort();
    assert_eq!(removed, ids[..10]);
    assert!(outcomes.iter().all(|o| o.stderr.contains("waiting up to")));
    assert_eq!(listed(&backups), ids[10..]);
    assert_verifies(&backups);
}

#[test]
fn a_backup_waits_while_a_prune_holds_the_directory() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    fs::create_dir_all(tmp.path().join("data")).unwrap();
    fs::write(tmp.path().join("data/a"), "a").unwrap();
    dated_backups(&backups, "data", &strs(&nightly(1)));
    let mut holder = Command::new("flock")
        .arg(backups.join(".ops-lock"))
        .args(["sleep", "1"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = ops("ops-backup")
        .arg("create")
        .arg(tmp.path().join("data"))
        .arg("--to")
        .arg(&backups)
        .run()
        .success();
    holder.wait().unwrap();
    out.stderr_contains("is locked by");
    assert_eq!(listed(&backups).len(), 2);
}

#[test]
fn on_a_terminal_the_plan_is_a_table() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(2)));
    let out = prune(&backups, &["--keep-last", "1", "--human", "--dry-run"]).success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ACTION  ITEM"), "{}", out.stdout);
    assert!(
        lines[1].starts_with(&format!("remove  {}", ids[0])),
        "{}",
        out.stdout
    );
    assert!(lines[2].contains("last 1 of 1"), "{}", out.stdout);
}

#[test]
fn an_edited_parent_cannot_get_a_kept_backup_s_parents_deleted() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    chained_backups(&backups, "db", &strs(&nightly(3)));
    let out =
        sh("ops-backup list backups | jq -c '.parent=null' | ops-prune --keep-last 1 backups")
            .current_dir(tmp.path())
            .run()
            .fails_with(2);
    out.stderr_contains("(parent differs)");
    assert_eq!(listed(&backups).len(), 3);
}

#[test]
fn a_backup_removed_while_prune_waited_for_the_lock_stops_it() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(4)));
    let records = ops("ops-backup")
        .arg("list")
        .arg(&backups)
        .run()
        .success()
        .stdout;
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(backups.join(".ops-lock"))
        .args(["sleep", "2"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let waiting = {
        let records = records.clone();
        std::thread::spawn(move || {
            ops("ops-prune")
                .args(["--keep-last", "2"])
                .stdin(records)
                .run()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    fs::remove_file(backups.join(format!("{}.manifest.jsonl", ids[3]))).unwrap();
    holder.wait().unwrap();
    let out = waiting.join().unwrap().fails_with(2);
    out.stderr_contains(&ids[3]);
    assert_eq!(listed(&backups).len(), 3, "nothing deleted");
}

#[test]
fn a_backup_whose_artifact_is_gone_is_not_the_newest_good_one() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(5)));
    fs::remove_file(backups.join(format!("{}.tar.zst", ids[4]))).unwrap();
    let out = prune(&backups, &["--keep-last", "1"]).success();
    let records = out.records();
    assert_eq!(ids_with(&records, "keep"), [ids[3].clone(), ids[4].clone()]);
    let why = records[4]["prune"]["reasons"][0].as_str().unwrap();
    assert!(
        why.contains("is missing") && why.contains("not counted"),
        "{why}"
    );
}

#[test]
fn files_of_backups_locks_and_temporary_files_are_never_plain_files() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let ids = dated_backups(&backups, "db", &strs(&nightly(5)));
    touch(
        &backups.join("reddit_cluster_20261101.sql"),
        "2026-11-01T03:00:00Z",
    );
    let out = ops("ops-prune")
        .args(["--files", "backups/db_*", "--keep-last", "2"])
        .current_dir(tmp.path())
        .run()
        .fails_with(2);
    assert!(
        out.stderr
            .contains(&format!("is part of backup {}", ids[0])),
        "{}",
        out.stderr
    );
    for name in [format!("{}.manifest.jsonl", ids[4]), ".ops-lock".to_owned()] {
        let record = format!(
            "{{\"type\":\"file\",\"v\":1,\"path\":\"backups/{name}\",\"time\":\"2020-01-01T00:00:00Z\",\"bytes\":1}}\n"
        );
        let out = ops("ops-prune")
            .args(["--older-than", "1d"])
            .stdin(record)
            .current_dir(tmp.path())
            .run()
            .fails_with(2);
        out.stderr_contains("input line 1");
    }
    assert_eq!(listed(&backups), ids);
    // Legacy dumps beside backups are plain files.
    ops("ops-prune")
        .args([
            "--files",
            "backups/reddit_cluster_*.sql",
            "--older-than",
            "1d",
        ])
        .current_dir(tmp.path())
        .run()
        .success();
    assert!(!backups.join("reddit_cluster_20261101.sql").exists());
    assert_eq!(listed(&backups), ids);
}

#[test]
fn a_verify_annotation_that_is_not_one_is_an_input_error() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(3)));
    let out = sh("ops-backup list backups | jq -c '.verify={ok:false,errors:[\"bad\"]}' | ops-prune --keep-last 1 backups")
        .current_dir(tmp.path())
        .run()
        .fails_with(2);
    out.stderr_contains("is not a verification result");
    assert_eq!(listed(&backups).len(), 3);
}

#[test]
fn keep_zero_means_the_rule_is_not_set_as_in_restic() {
    let tmp = tempdir().unwrap();
    let backups = tmp.path().join("backups");
    dated_backups(&backups, "db", &strs(&nightly(3)));
    let out = prune(&backups, &["--keep-last", "0"]).fails_with(2);
    out.stderr_contains("no rule given");
    assert_eq!(listed(&backups).len(), 3);
}
