//! ops-prune over ops-snapshot repositories: snapshot records on stdin and
//! `--repo` are candidates, removed snapshots are forgotten (gc frees their
//! data), and the safety rules hold as for backups. Repositories are made by
//! running the real ops-snapshot.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use ops_tests::{assert_same_tree, ops, pseudo_random, sh, Outcome};
use serde_json::Value;
use tempfile::{tempdir, TempDir};

/// A repository with series of snapshots, each holding data of its own, and
/// a copy of the tree each snapshot was taken of.
struct Fixture {
    tmp: TempDir,
    repo: PathBuf,
    /// Per snapshot made: its record and the copy of its tree.
    made: Vec<(Value, PathBuf)>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempdir().unwrap();
        let repo = tmp.path().join("repo");
        Fixture {
            tmp,
            repo,
            made: Vec::new(),
        }
    }

    /// Takes `count` snapshots of series `name`, changing its data each time.
    fn series(&mut self, name: &str, count: usize) -> Vec<String> {
        let src = self.tmp.path().join(format!("src-{name}"));
        let mut ids = Vec::new();
        for n in 0..count {
            let _ = fs::remove_dir_all(&src);
            fs::create_dir_all(&src).unwrap();
            let seed = (self.made.len() as u64 + 1) * 1000;
            fs::write(src.join("data.bin"), pseudo_random(400_000, seed)).unwrap();
            fs::write(src.join("note.txt"), format!("{name} {n}\n")).unwrap();
            let record = ops("ops-snapshot")
                .arg("create")
                .arg(&src)
                .arg("--repo")
                .arg(&self.repo)
                .args(["--name", name])
                .run()
                .success()
                .record();
            let copy = self.tmp.path().join(format!("copy-{}", self.made.len()));
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(&copy)
                .status()
                .unwrap();
            assert!(status.success());
            ids.push(record["id"].as_str().unwrap().to_owned());
            self.made.push((record, copy));
        }
        ids
    }

    /// `ops-snapshot list` as one string of records.
    fn list(&self) -> String {
        ops("ops-snapshot")
            .arg("list")
            .arg("--repo")
            .arg(&self.repo)
            .run()
            .success()
            .stdout
    }

    fn listed_ids(&self) -> Vec<String> {
        let out = Outcome {
            code: 0,
            stdout: self.list(),
            stderr: String::new(),
        };
        out.records()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The manifests in REPO/snapshots, sorted.
    fn manifests(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.repo.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Restores snapshot `id` and compares it with the tree it was taken of.
    fn assert_restores(&self, id: &str) {
        let (_, copy) = self
            .made
            .iter()
            .find(|(record, _)| record["id"] == id)
            .unwrap();
        let to = self.tmp.path().join(format!("restored-{}", &id[..8]));
        ops("ops-snapshot")
            .args(["restore", id, "--repo"])
            .arg(&self.repo)
            .arg("--to")
            .arg(&to)
            .run()
            .success();
        assert_same_tree(copy, &to);
    }
}

fn prune(stdin: &str, args: &[&str]) -> Outcome {
    ops("ops-prune").args(args).stdin(stdin).run()
}

fn ids_with(records: &[Value], action: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["prune"]["action"] == action)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_names_repo_and_what_is_not_a_repository_is_a_usage_error() {
    let out = ops("ops-prune").arg("--help").run().success();
    out.stdout_contains("--repo");
    out.stdout_contains("ops-snapshot gc");

    let tmp = tempdir().unwrap();
    let out = ops("ops-prune")
        .args(["--keep-last", "1", "--repo"])
        .arg(tmp.path())
        .run()
        .fails_with(2);
    out.stderr_contains("not an ops-snapshot repository");

    let mut fixture = Fixture::new();
    fixture.series("data", 2);
    let config = fixture.repo.join("config");
    let text = fs::read_to_string(&config).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    json["version"] = Value::from(99);
    fs::write(&config, json.to_string()).unwrap();
    let out = ops("ops-prune")
        .args(["--keep-last", "1", "--repo"])
        .arg(&fixture.repo)
        .run()
        .fails_with(2);
    out.stderr_contains("newer");
    assert_eq!(fixture.manifests().len(), 2);
}

#[test]
fn keep_last_over_listed_snapshots_forgets_the_rest_and_gc_then_frees_their_space() {
    let mut fixture = Fixture::new();
    let data = fixture.series("data", 3);
    let logs = fixture.series("logs", 2);
    let out = prune(&fixture.list(), &["--keep-last", "1"]).success();
    let records = out.records();
    assert_eq!(records.len(), 5, "one record per snapshot: {}", out.stdout);
    assert!(records.iter().all(|r| r["type"] == "snapshot"));
    assert!(records.iter().all(|r| r["prune"]["done"] == true));
    assert_eq!(
        sorted(ids_with(&records, "remove")),
        sorted(vec![data[0].clone(), data[1].clone(), logs[0].clone()])
    );
    assert_eq!(
        fixture.manifests(),
        sorted(vec![data[2].clone(), logs[1].clone()])
    );
    out.stderr_contains(&format!(
        "ops-snapshot gc --repo {}",
        s(&fs::canonicalize(&fixture.repo).unwrap())
    ));
    out.stderr_contains("removed 3 snapshot(s)");
    assert_eq!(
        sorted(fixture.listed_ids()),
        sorted(vec![data[2].clone(), logs[1].clone()])
    );

    let gc = ops("ops-snapshot")
        .args(["gc", "--repo"])
        .arg(&fixture.repo)
        .run()
        .success()
        .record();
    let (before, after) = (
        gc["before_bytes"].as_u64().unwrap(),
        gc["after_bytes"].as_u64().unwrap(),
    );
    assert!(after < before, "gc freed nothing: {gc}");
    ops("ops-verify")
        .args(["--read-data", "--repo"])
        .arg(&fixture.repo)
        .run()
        .success();
    fixture.assert_restores(&data[2]);
    fixture.assert_restores(&logs[1]);
}

#[test]
fn a_dry_run_says_what_would_go_and_removes_nothing() {
    let mut fixture = Fixture::new();
    let data = fixture.series("data", 3);
    let out = prune(&fixture.list(), &["--keep-last", "1", "--dry-run"]).success();
    let records = out.records();
    assert_eq!(ids_with(&records, "remove"), data[..2]);
    assert!(records.iter().all(|r| r["prune"]["done"] == false));
    out.stderr_contains("nothing was changed");
    out.stderr_contains("ops-snapshot gc");
    assert_eq!(fixture.manifests(), sorted(data));
}

#[test]
fn the_newest_snapshot_of_each_series_stays_unless_remove_all_is_allowed() {
    let mut fixture = Fixture::new();
    let data = fixture.series("data", 2);
    let logs = fixture.series("logs", 2);
    // A hundred years on, every snapshot is older than a day.
    let later = ["--older-than", "1d", "--now", "2126-01-01T00:00:00Z"];
    let out = prune(&fixture.list(), &later).success();
    let records = out.records();
    assert_eq!(
        sorted(ids_with(&records, "keep")),
        sorted(vec![data[1].clone(), logs[1].clone()])
    );
    let kept = records.iter().find(|r| r["id"] == data[1]).unwrap();
    assert!(
        kept["prune"]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("the newest good"),
        "{kept}"
    );
    assert_eq!(
        fixture.manifests(),
        sorted(vec![data[1].clone(), logs[1].clone()])
    );
    let mut args = later.to_vec();
    args.push("--allow-remove-all");
    prune(&fixture.list(), &args).success();
    assert!(fixture.manifests().is_empty());
}

#[test]
fn a_snapshot_that_failed_verification_upstream_leaves_its_series_alone() {
    let mut fixture = Fixture::new();
    let data = fixture.series("data", 3);
    let logs = fixture.series("logs", 2);
    let mut lines = Vec::new();
    for line in fixture.list().lines() {
        let mut record: Value = serde_json::from_str(line).unwrap();
        if record["id"] == data[0] {
            record["verify"] = serde_json::json!({
                "ok": false, "level": "full", "time": "2026-11-22T00:00:00Z",
                "errors": ["chunk 3f2a9c1e: hash mismatch"]
            });
        }
        lines.push(record.to_string());
    }
    let out = prune(&(lines.join("\n") + "\n"), &["--keep-last", "1"]).fails_with(1);
    out.stderr_contains("failed verification");
    let mut left = data.clone();
    left.push(logs[1].clone());
    assert_eq!(fixture.manifests(), sorted(left), "only logs was pruned");

    // A verify that is not a verification result is an input error.
    let broken = lines[1].replacen("\"v\":1", "\"v\":1,\"verify\":\"yes\"", 1);
    let out = prune(&(broken + "\n"), &["--keep-last", "1"]).fails_with(2);
    out.stderr_contains("input line 1");
}

#[test]
fn a_stale_or_edited_snapshot_record_stops_the_run_before_anything_is_removed() {
    let mut fixture = Fixture::new();
    let data = fixture.series("data", 3);
    let listed = fixture.list();

    // The oldest is forgotten meanwhile: the old listing is stale.
    prune(&listed, &["--keep-last", "2"]).success();
    let after_first = fixture.manifests();
    assert_eq!(after_first, sorted(data[1..].to_vec()));
    let out = prune(&listed, &["--keep-last", "1"]).fails_with(2);
    assert!(
        out.stderr
            .contains(&format!("snapshot {} is not in", data[0])),
        "{}",
        out.stderr
    );
    out.stderr_contains("nothing was deleted");
    assert_eq!(fixture.manifests(), after_first);

    // An edited time would steer the policy: refused, in a dry run too.
    let mut lines: Vec<Value> = fixture
        .list()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[1]["time"] = Value::from("2020-01-01T00:00:00Z");
    let edited: String = lines.iter().map(|r| format!("{r}\n")).collect();
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["--keep-last", "1"];
        args.extend(extra);
        let out = prune(&edited, &args).fails_with(2);
        assert!(
            out.stderr
                .contains("does not match the repository (time differs)"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(fixture.manifests(), after_first);

    // A record whose repository is not one.
    let mut elsewhere = lines[0].clone();
    elsewhere["repo"] = Value::from(s(&fixture.tmp.path().join("gone")));
    let out = prune(&format!("{elsewhere}\n"), &["--keep-last", "1"]).fails_with(2);
    out.stderr_contains("not an ops-snapshot repository");
}

#[test]
fn repo_arguments_are_candidates_and_the_same_snapshots_on_stdin_are_not_doubled() {
    let mut fixture = Fixture::new();
    let data = fixture.series("data", 3);
    let logs = fixture.series("logs", 1);
    let out = ops("ops-prune")
        .args(["--keep-last", "2", "--repo"])
        .arg(&fixture.repo)
        .stdin(fixture.list())
        .run()
        .success();
    let records = out.records();
    assert_eq!(records.len(), 4, "{}", out.stdout);
    assert_eq!(ids_with(&records, "remove"), [data[0].clone()]);
    assert_eq!(
        fixture.manifests(),
        sorted(vec![data[1].clone(), data[2].clone(), logs[0].clone()])
    );

    // --repo alone, all series together.
    let out = ops("ops-prune")
        .args(["--keep-last", "1", "--group-by", "none", "--repo"])
        .arg(&fixture.repo)
        .run()
        .success();
    assert_eq!(ids_with(&out.records(), "keep"), [logs[0].clone()]);
    assert_eq!(fixture.listed_ids(), [logs[0].clone()]);
    fixture.assert_restores(&logs[0]);
}

#[test]
fn a_repository_held_by_gc_or_create_makes_prune_wait_then_give_up() {
    let mut fixture = Fixture::new();
    fixture.series("data", 2);
    let mut holder = std::process::Command::new("flock")
        .args(["--shared", "--no-fork"])
        .arg(fixture.repo.join(".ops-lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = ops("ops-prune")
        .args(["--keep-last", "1", "--lock-wait", "1s", "--repo"])
        .arg(&fixture.repo)
        .run()
        .fails_with(1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    out.stderr_contains("is locked by");
    assert_eq!(fixture.manifests().len(), 2);
}

#[test]
fn the_issue_pipeline_lists_verifies_and_prunes() {
    let mut fixture = Fixture::new();
    let data = fixture.series("data", 3);
    let out = sh(&format!(
        "ops-snapshot list --repo '{repo}' | ops-verify | ops-prune --keep-last 2",
        repo = s(&fixture.repo)
    ))
    .run()
    .success();
    let records = out.records();
    assert!(
        records.iter().all(|r| r["verify"]["ok"] == true),
        "{}",
        out.stdout
    );
    assert_eq!(ids_with(&records, "remove"), [data[0].clone()]);
    assert_eq!(fixture.manifests(), sorted(data[1..].to_vec()));
}
