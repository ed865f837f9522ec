//! ops-health --repo: snapshot age per series, the chunk index, leftovers of
//! crashed runs, --fix, and the output formats, on repositories made by the
//! real ops-snapshot.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ops_tests::{ops, pseudo_random, Outcome};
use serde_json::Value;
use tempfile::{tempdir, TempDir};

fn health(args: &[&str]) -> Outcome {
    ops("ops-health").args(args).run()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn only(out: &Outcome, check: &str) -> Vec<Value> {
    out.records()
        .into_iter()
        .filter(|r| r["check"] == check)
        .collect()
}

/// A repository with one snapshot of each named series.
fn repository(names: &[&str]) -> (TempDir, PathBuf) {
    let tmp = tempdir().unwrap();
    let repo = tmp.path().join("repo");
    for (n, name) in names.iter().enumerate() {
        let src = tmp.path().join(format!("src-{name}"));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("data.bin"), pseudo_random(200_000, n as u64 + 1)).unwrap();
        ops("ops-snapshot")
            .arg("create")
            .arg(&src)
            .arg("--repo")
            .arg(&repo)
            .args(["--name", name])
            .run()
            .success();
    }
    (tmp, repo)
}

/// Where ops-snapshot keeps the repository's chunk index, with the tests'
/// cache directory (`OPS_CACHE_DIR`, which the harness sets for the
/// binaries).
fn index_dir(repo: &Path) -> PathBuf {
    std::env::set_var("OPS_CACHE_DIR", ops_tests::test_cache());
    ops_snapshot::Repo::open(repo).unwrap().index_dir()
}

fn touch_hours_ago(path: &Path, hours: u32) {
    let done = Command::new("touch")
        .args(["-d", &format!("{hours} hours ago")])
        .arg(path)
        .status()
        .unwrap();
    assert!(done.success());
}

fn hold(lock: &Path, how: &str) -> std::process::Child {
    let child = Command::new("flock")
        .args([how, "--no-fork"])
        .arg(lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child
}

#[test]
fn help_names_the_repo_check() {
    let out = health(&["--help"]).success();
    out.stdout_contains("--repo <REPO>");
}

#[test]
fn a_fresh_repository_is_ok_per_series_with_its_index() {
    let (_tmp, repo) = repository(&["data", "logs"]);
    let out = health(&["--repo", s(&repo), "--json"]).success();
    let checks = only(&out, "repo");
    assert_eq!(checks.len(), 3, "two series and the index: {}", out.stdout);
    assert!(checks.iter().all(|c| c["status"] == "ok"), "{}", out.stdout);
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["data", "logs"]);
    assert!(checks[0]["metrics"]["newest_age_seconds"].as_f64().unwrap() < 600.0);
    assert_eq!(checks[0]["metrics"]["stored"], 1.0);
    assert!(checks[2]["message"]
        .as_str()
        .unwrap()
        .contains("chunk index is up to date"));

    let prom = health(&["--repo", s(&repo), "--format", "prometheus"]).success();
    let line = prom
        .stdout
        .lines()
        .find(|l| l.starts_with("ops_snapshot_newest_timestamp_seconds{name=\"data\""))
        .unwrap_or_else(|| panic!("{}", prom.stdout));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value > 1.7e9, "{line}");
    prom.stdout_lacks("ops_backup_newest_timestamp_seconds");

    let nagios = health(&["--repo", s(&repo), "--format", "nagios"]).success();
    assert!(
        nagios.stdout.starts_with("OPS OK - 3 checks ok | "),
        "{}",
        nagios.stdout
    );
    assert!(
        nagios
            .stdout
            .contains(&format!("'repo {} data newest_age_seconds'=", s(&repo))),
        "{}",
        nagios.stdout
    );
}

#[test]
fn a_series_older_than_max_age_or_no_snapshot_at_all_is_critical() {
    let (_tmp, repo) = repository(&["data"]);
    std::thread::sleep(Duration::from_millis(1100));
    let out = health(&["--repo", s(&repo), "--max-age", "1s", "--json"]).fails_with(2);
    let series = &only(&out, "repo")[0];
    assert_eq!(series["status"], "crit");
    assert!(
        series["message"]
            .as_str()
            .unwrap()
            .contains("older than --max-age 1s"),
        "{series}"
    );
    let nagios =
        health(&["--repo", s(&repo), "--max-age", "1s", "--format", "nagios"]).fails_with(2);
    assert!(
        nagios.stdout.starts_with("OPS CRITICAL - repo "),
        "{}",
        nagios.stdout
    );

    // Every snapshot forgotten: nothing to restore from.
    ops("ops-prune")
        .args(["--allow-remove-all", "--repo"])
        .arg(&repo)
        .run()
        .success();
    let out = health(&["--repo", s(&repo), "--json"]).fails_with(2);
    let empty = &only(&out, "repo")[0];
    assert_eq!(empty["status"], "crit");
    assert!(
        empty["message"]
            .as_str()
            .unwrap()
            .contains("no snapshots in"),
        "{empty}"
    );
}

#[test]
fn not_a_repository_is_critical_and_a_newer_format_unknown() {
    let tmp = tempdir().unwrap();
    let out = health(&["--repo", s(tmp.path()), "--json"]).fails_with(2);
    let check = out.record();
    assert_eq!(check["status"], "crit");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("not an ops-snapshot repository"),
        "{check}"
    );
    health(&["--repo", s(&tmp.path().join("missing")), "--json"]).fails_with(2);

    let (_tmp, repo) = repository(&["data"]);
    let config = repo.join("config");
    let mut json: Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    json["version"] = Value::from(99);
    fs::write(&config, json.to_string()).unwrap();
    let out = health(&["--repo", s(&repo), "--json"]).fails_with(3);
    let check = out.record();
    assert_eq!(check["status"], "unknown");
    assert!(
        check["message"].as_str().unwrap().contains("newer"),
        "{check}"
    );
    let nagios = health(&["--repo", s(&repo), "--format", "nagios"]).fails_with(3);
    assert!(
        nagios.stdout.starts_with("OPS UNKNOWN - "),
        "{}",
        nagios.stdout
    );
}

#[test]
fn an_old_temporary_file_warns_and_fix_removes_it_when_nothing_holds_the_repository() {
    let (_tmp, repo) = repository(&["data"]);
    let old = repo.join("packs").join("pack-1-2-3.ops-tmp");
    let young = repo.join("snapshots").join("0123.ops-tmp");
    fs::write(&old, "partial pack").unwrap();
    fs::write(&young, "partial manifest").unwrap();
    touch_hours_ago(&old, 2);

    let out = health(&["--repo", s(&repo), "--json"]).fails_with(1);
    let leftovers = only(&out, "repo").pop().unwrap();
    assert_eq!(leftovers["status"], "warn", "{}", out.stdout);
    assert_eq!(leftovers["metrics"]["temp_files"], 1.0);

    // A snapshot being made holds the repository: leftovers are left.
    let mut holder = hold(&repo.join(".ops-lock"), "--shared");
    let out = health(&["--repo", s(&repo), "--fix", "--json"]).fails_with(1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let fixes = only(&out, "fix");
    assert_eq!(fixes.len(), 1, "{}", out.stdout);
    assert!(
        fixes[0]["message"]
            .as_str()
            .unwrap()
            .contains("temporary files not removed"),
        "{}",
        out.stdout
    );
    assert!(old.exists());

    let out = health(&["--repo", s(&repo), "--fix", "--dry-run", "--json"]).fails_with(1);
    let fixes = only(&out, "fix");
    assert_eq!(fixes.len(), 1, "{}", out.stdout);
    assert!(fixes[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("would remove a temporary file"));
    assert!(old.exists(), "--dry-run removes nothing");

    let out = health(&["--repo", s(&repo), "--fix", "--json"]).success();
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
        "a young temporary file may belong to a running create"
    );
}

#[test]
fn a_damaged_index_is_critical_and_fix_rebuilds_it_from_the_packs() {
    let (tmp, repo) = repository(&["data", "logs"]);
    fs::write(index_dir(&repo).join("db/db"), pseudo_random(5000, 9)).unwrap();
    let out = health(&["--repo", s(&repo), "--json"]).fails_with(2);
    let index = only(&out, "repo").pop().unwrap();
    assert_eq!(index["status"], "crit");
    let message = index["message"].as_str().unwrap();
    assert!(message.contains("index damaged"), "{message}");
    assert!(
        message.contains(&format!("ops-health --repo {} --fix", s(&repo))),
        "{message}"
    );

    let out = health(&["--repo", s(&repo), "--fix", "--dry-run", "--json"]).fails_with(2);
    let plans = only(&out, "fix");
    assert_eq!(plans.len(), 1, "{}", out.stdout);
    assert!(plans[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("would rebuild the damaged chunk index"));
    assert_eq!(only(&out, "repo").pop().unwrap()["status"], "crit");

    let out = health(&["--repo", s(&repo), "--fix", "--json"]).success();
    let fixes = only(&out, "fix");
    assert_eq!(fixes.len(), 1, "{}", out.stdout);
    assert!(
        fixes[0]["message"]
            .as_str()
            .unwrap()
            .contains("rebuilt the damaged chunk index"),
        "{}",
        out.stdout
    );
    health(&["--repo", s(&repo)]).success();
    let to = tmp.path().join("restored");
    ops("ops-snapshot")
        .args(["restore", "latest", "--repo"])
        .arg(&repo)
        .arg("--to")
        .arg(&to)
        .run()
        .success();
    assert_eq!(
        fs::read(to.join("data.bin")).unwrap(),
        pseudo_random(200_000, 2)
    );
}

#[test]
fn an_index_in_use_is_reported_not_critical_and_a_missing_one_is_rebuilt() {
    let (_tmp, repo) = repository(&["data"]);
    let mut holder = hold(&index_dir(&repo).join(".ops-lock"), "--exclusive");
    let out = health(&["--repo", s(&repo), "--json"]).success();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let index = only(&out, "repo").pop().unwrap();
    assert!(
        index["message"].as_str().unwrap().contains("in use"),
        "{index}"
    );

    fs::remove_dir_all(index_dir(&repo)).unwrap();
    let out = health(&["--repo", s(&repo), "--json"]).success();
    assert!(only(&out, "repo")
        .iter()
        .any(|c| c["message"].as_str().unwrap().contains("up to date")));
    assert!(index_dir(&repo).join("db").exists());
}
