//! ops-verify on ops-snapshot repositories, as a user runs it: --repo,
//! --read-data, --read-data-subset, snapshot records on stdin, and a
//! repository's damage (a corrupted pack, a missing pack, not a repository,
//! a newer format). Repositories are made by the real ops-snapshot.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use ops_tests::{assert_same_tree, ops, pseudo_random, sample_tree};
use serde_json::Value;
use tempfile::{tempdir, TempDir};

/// A repository with two snapshots of different data: `alpha` (the sample
/// tree) and `beta` (one file of its own), and the packs only beta uses.
struct TwoSnapshots {
    tmp: TempDir,
    repo: PathBuf,
    alpha: Value,
    beta: Value,
    beta_packs: Vec<PathBuf>,
}

impl TwoSnapshots {
    fn make() -> Self {
        let tmp = tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let alpha_dir = tmp.path().join("alpha");
        sample_tree(&alpha_dir);
        let beta_dir = tmp.path().join("beta");
        fs::create_dir(&beta_dir).unwrap();
        fs::write(beta_dir.join("beta.bin"), pseudo_random(200_000, 99)).unwrap();
        let alpha = create(&alpha_dir, &repo, "alpha");
        let before = packs(&repo);
        let beta = create(&beta_dir, &repo, "beta");
        let beta_packs: Vec<PathBuf> = packs(&repo).difference(&before).cloned().collect();
        assert!(!beta_packs.is_empty(), "beta stored no pack of its own");
        TwoSnapshots {
            tmp,
            repo,
            alpha,
            beta,
            beta_packs,
        }
    }

    fn verify(&self, extra: &[&str]) -> ops_tests::Outcome {
        ops("ops-verify")
            .arg("--repo")
            .arg(&self.repo)
            .args(extra)
            .run()
    }
}

fn create(source: &Path, repo: &Path, name: &str) -> Value {
    ops("ops-snapshot")
        .arg("create")
        .arg(source)
        .arg("--repo")
        .arg(repo)
        .args(["--name", name])
        .run()
        .success()
        .record()
}

/// Every pack file of the repository.
fn packs(repo: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for dir in fs::read_dir(repo.join("packs")).unwrap() {
        for pack in fs::read_dir(dir.unwrap().path()).unwrap() {
            found.insert(pack.unwrap().path());
        }
    }
    found
}

fn pack_id(pack: &Path) -> String {
    pack.file_name().unwrap().to_string_lossy().into_owned()
}

/// Flips one byte in the middle of `file`, where a pack keeps chunk data
/// (its table is at the end).
fn flip_byte(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(file, bytes).unwrap();
}

fn by_id<'a>(records: &'a [Value], wanted: &Value) -> &'a Value {
    records
        .iter()
        .find(|r| r["id"] == wanted["id"])
        .unwrap_or_else(|| panic!("no record of {} in {records:?}", wanted["id"]))
}

fn errors(record: &Value) -> String {
    record["verify"]["errors"].to_string()
}

#[test]
fn help_and_bad_arguments() {
    let help = ops("ops-verify").arg("--help").run().success();
    for flag in ["--repo", "--read-data", "--read-data-subset", "--lock-wait"] {
        assert!(help.stdout.contains(flag), "{flag} not in --help");
    }
    for bad in [
        &["--repo", "r", "--read-data-subset", "0%"][..],
        &["--repo", "r", "--read-data-subset", "101%"],
        &["--repo", "r", "--read-data-subset", "some"],
        &["--repo", "r", "--read-data", "--read-data-subset", "10%"],
        &["--repo", "r", "--lock-wait", "soon"],
        &["--repo"],
    ] {
        let out = ops("ops-verify").args(bad).run().fails_with(2);
        assert!(
            out.stderr.contains("ops-verify: error:"),
            "{bad:?}: {out:?}"
        );
    }
}

#[test]
fn a_good_repository_verifies_by_structure_by_reading_data_and_by_a_subset() {
    let repo = TwoSnapshots::make();
    for (flags, level) in [
        (&[][..], "quick"),
        (&["--read-data"][..], "full"),
        (&["--read-data-subset", "50%"][..], "full"),
    ] {
        let out = repo.verify(flags).success();
        let records = out.records();
        assert_eq!(records.len(), 2, "{flags:?}: {out:?}");
        for (record, made) in records.iter().zip([&repo.alpha, &repo.beta]) {
            assert_eq!(record["type"], "snapshot");
            assert_eq!(record["id"], made["id"]);
            assert_eq!(record["name"], made["name"]);
            assert_eq!(record["files"], made["files"]);
            assert_eq!(record["verify"]["ok"], true, "{flags:?}: {record}");
            assert_eq!(record["verify"]["level"], level);
            assert_eq!(record["verify"]["errors"], Value::Array(vec![]));
        }
        assert!(out.stderr.is_empty(), "{flags:?}: {}", out.stderr);
    }
    let subset = repo.verify(&["--read-data-subset", "50"]).success();
    assert_eq!(subset.records()[0]["verify"]["subset_percent"], 50.0);
}

#[test]
fn the_human_table_shows_each_snapshot_and_its_verdict() {
    let repo = TwoSnapshots::make();
    let out = repo.verify(&["--read-data", "--human"]).success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("ID") && lines[0].contains("VERIFIED"));
    assert!(lines[1].contains(&repo.alpha["id"].as_str().unwrap()[..8]));
    assert!(lines[1].contains("ok (full,") && lines[2].contains("ok (full,"));
}

#[test]
fn a_corrupted_pack_is_found_by_read_data_named_and_unaffected_snapshots_still_restore() {
    let repo = TwoSnapshots::make();
    let pack = &repo.beta_packs[0];
    flip_byte(pack);

    let out = repo.verify(&["--read-data"]).fails_with(1);
    let records = out.records();
    assert_eq!(records.len(), 2);
    let alpha = by_id(&records, &repo.alpha);
    let beta = by_id(&records, &repo.beta);
    assert_eq!(alpha["verify"]["ok"], true, "{alpha}");
    assert_eq!(beta["verify"]["ok"], false);
    assert_eq!(beta["verify"]["level"], "full");
    assert!(errors(beta).contains(&pack_id(pack)), "{}", errors(beta));
    out.stderr_contains(&pack_id(pack));
    let short = &repo.beta["id"].as_str().unwrap()[..8];
    out.stderr_contains(&format!("snapshot {short}:"));

    // The subset that reads every pack finds it too.
    repo.verify(&["--read-data-subset", "100%"]).fails_with(1);

    // The snapshot that does not use the pack restores byte-identical; the
    // one that does fails and writes nothing.
    let restored = repo.tmp.path().join("restored-alpha");
    ops("ops-snapshot")
        .arg("restore")
        .arg(repo.alpha["id"].as_str().unwrap())
        .arg("--repo")
        .arg(&repo.repo)
        .arg("--to")
        .arg(&restored)
        .run()
        .success();
    assert_same_tree(&repo.tmp.path().join("alpha"), &restored);
    let broken = repo.tmp.path().join("restored-beta");
    ops("ops-snapshot")
        .arg("restore")
        .arg(repo.beta["id"].as_str().unwrap())
        .arg("--repo")
        .arg(&repo.repo)
        .arg("--to")
        .arg(&broken)
        .run()
        .fails_with(1);
    assert!(!broken.exists());
}

#[test]
fn a_corrupted_data_chunk_names_the_file_it_belongs_to() {
    let repo = TwoSnapshots::make();
    let pack = &repo.beta_packs[0];
    flip_byte(pack);
    let out = repo.verify(&["--read-data"]).fails_with(1);
    let beta = by_id(&out.records(), &repo.beta).clone();
    let found = errors(&beta);
    assert!(found.contains("beta.bin"), "no file named: {found}");
    assert!(found.contains(&pack_id(pack)), "{found}");
    assert!(
        !out.stderr.contains("unused chunk"),
        "damage blamed on beta reported as unused too: {}",
        out.stderr
    );
}

#[test]
fn a_corrupted_pack_table_names_the_files_it_affects() {
    let repo = TwoSnapshots::make();
    let pack = &repo.beta_packs[0];
    // The first table entry's chunk id: the pack no longer matches its name.
    let mut bytes = fs::read(pack).unwrap();
    let tail = bytes.len() - 12;
    let count = u32::from_le_bytes(bytes[tail..tail + 4].try_into().unwrap()) as usize;
    bytes[tail - count * 40 + 5] ^= 0xff;
    fs::write(pack, bytes).unwrap();
    let out = repo.verify(&["--read-data"]).fails_with(1);
    let beta = by_id(&out.records(), &repo.beta).clone();
    let found = errors(&beta);
    assert!(found.contains(&pack_id(pack)), "{found}");
    assert!(found.contains("beta.bin"), "no file named: {found}");
    assert!(
        !out.stderr.contains("unused chunk"),
        "damage of beta's pack reported as unused: {}",
        out.stderr
    );
}

#[test]
fn a_missing_pack_is_found_by_the_structure_check_and_named() {
    let repo = TwoSnapshots::make();
    let pack = &repo.beta_packs[0];
    fs::remove_file(pack).unwrap();
    let out = repo.verify(&[]).fails_with(1);
    let records = out.records();
    let alpha = by_id(&records, &repo.alpha);
    let beta = by_id(&records, &repo.beta);
    assert_eq!(alpha["verify"]["ok"], true, "{alpha}");
    assert_eq!(beta["verify"]["ok"], false);
    assert_eq!(beta["verify"]["level"], "quick");
    let found = errors(beta);
    assert!(
        found.contains(&pack_id(pack)) && found.contains("missing"),
        "{found}"
    );
    out.stderr_contains(&pack_id(pack));
}

#[test]
fn not_a_repository_and_a_newer_format_are_usage_errors() {
    let tmp = tempdir().unwrap();
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(plain.join("notes.txt"), "not a repository\n").unwrap();
    for dir in [plain.clone(), tmp.path().join("missing")] {
        let out = ops("ops-verify")
            .arg("--repo")
            .arg(&dir)
            .run()
            .fails_with(2);
        out.stderr_contains("not an ops-snapshot repository");
        assert!(out.stdout.is_empty());
    }

    let repo = TwoSnapshots::make();
    let config_path = repo.repo.join("config");
    let mut config: Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["version"] = 99.into();
    fs::write(&config_path, config.to_string()).unwrap();
    let out = repo.verify(&["--read-data"]).fails_with(2);
    out.stderr_contains("version 99").stderr_contains("newer");
    assert!(out.stdout.is_empty());
    // Nothing is checked when one of several repositories is unusable.
    let out = ops("ops-verify")
        .arg("--repo")
        .arg(tmp.path().join("missing"))
        .arg("--repo")
        .arg(&repo.repo)
        .run()
        .fails_with(2);
    assert!(out.stdout.is_empty());
}

#[test]
fn snapshot_records_on_stdin_are_verified_in_order_and_others_pass_through() {
    let repo = TwoSnapshots::make();
    let listed = ops("ops-snapshot")
        .arg("list")
        .arg("--repo")
        .arg(&repo.repo)
        .run()
        .success();
    let listed = listed.records();
    let note = r#"{"type":"note","v":1,"text":"keep me",  "odd spacing":true}"#;
    // Newest first, with an annotation of someone else's kept.
    let mut beta = listed[1].clone();
    beta["prune"] = serde_json::json!({"action": "keep", "reasons": ["last 1"], "done": false});
    let input = format!("{note}\n{beta}\n{note}\n{}\n", listed[0]);
    let out = ops("ops-verify")
        .arg("--read-data")
        .stdin(input.clone())
        .run()
        .success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert_eq!(lines[0], note);
    assert_eq!(lines[2], note);
    let first: Value = serde_json::from_str(lines[1]).unwrap();
    let second: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(first["id"], repo.beta["id"]);
    assert_eq!(first["prune"]["action"], "keep");
    assert_eq!(first["verify"]["ok"], true);
    assert_eq!(first["verify"]["level"], "full");
    assert_eq!(second["id"], repo.alpha["id"]);
    assert_eq!(second["verify"]["ok"], true);

    // The same pipeline after damage: the record of the damaged snapshot fails.
    flip_byte(&repo.beta_packs[0]);
    let out = ops("ops-verify")
        .arg("--read-data")
        .stdin(input)
        .run()
        .fails_with(1);
    let records = out.records();
    assert_eq!(records.len(), 4);
    assert_eq!(records[1]["verify"]["ok"], false);
    assert_eq!(records[3]["verify"]["ok"], true);
}

#[test]
fn a_snapshot_record_of_a_repository_that_is_gone_fails_its_verification() {
    let repo = TwoSnapshots::make();
    let mut record = repo.alpha.clone();
    record["repo"] = repo
        .tmp
        .path()
        .join("moved")
        .to_string_lossy()
        .as_ref()
        .into();
    let out = ops("ops-verify")
        .stdin(format!("{record}\n"))
        .run()
        .fails_with(1);
    let verified = out.record();
    assert_eq!(verified["verify"]["ok"], false);
    assert!(
        errors(&verified).contains("not an ops-snapshot repository"),
        "{}",
        errors(&verified)
    );
}

#[test]
fn a_snapshot_record_whose_id_is_a_path_is_never_read_as_one() {
    let repo = TwoSnapshots::make();
    let mut forged = repo.alpha.clone();
    forged["id"] = "../config".into();
    let out = ops("ops-verify").stdin(format!("{forged}\n")).run();
    assert_ne!(out.code, 0, "{out:?}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("no snapshot") && said.contains("../config"),
        "{said}"
    );
    assert!(!said.contains("does not match its id"), "{said}");
}
