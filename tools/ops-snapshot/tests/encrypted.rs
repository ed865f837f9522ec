//! Encrypted repositories, as a user runs them: `create --encrypt` with a
//! passphrase from OPS_PASSWORD_FILE (or a slot for an age public key);
//! nothing of the data's names or contents in the clear; without the key
//! the stored bytes are still checked; keys change without rewriting data.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ops_tests::{assert_same_tree, ops, ops_keyless, pseudo_random, Run};
use serde_json::Value;
use tempfile::{tempdir, TempDir};
use walkdir::WalkDir;

const MARKER: &str = "zebramarker";
const PASSPHRASE: &str = "correct horse battery staple";

struct Setup {
    tmp: TempDir,
    data: PathBuf,
    repo: PathBuf,
    pass: PathBuf,
}

fn password_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("{text}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A tree whose names and contents hold the marker, and a repository
/// path beside it (not yet made).
fn setup() -> Setup {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join(format!("{MARKER}_src"));
    fs::create_dir_all(data.join(format!("{MARKER}_dir"))).unwrap();
    fs::write(
        data.join(format!("{MARKER}_dir/{MARKER}.txt")),
        format!("the {MARKER} says hello\n").repeat(2000),
    )
    .unwrap();
    let mut big = pseudo_random(3 << 20, 7);
    big[1000..1000 + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    fs::write(data.join("big.bin"), big).unwrap();
    let repo = tmp.path().join("repo");
    let pass = password_file(tmp.path(), "repo.pass", PASSPHRASE);
    Setup {
        tmp,
        data,
        repo,
        pass,
    }
}

/// A tool with the passphrase in `pass`.
fn keyed(tool: &str, pass: &Path) -> Run {
    ops_keyless(tool).env("OPS_PASSWORD_FILE", pass)
}

fn create_encrypted(s: &Setup) -> Value {
    keyed("ops-snapshot", &s.pass)
        .arg("create")
        .arg(&s.data)
        .arg("--repo")
        .arg(&s.repo)
        .arg("--encrypt")
        .run()
        .success()
        .record()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

/// Fails if `needle` is in any name or stored byte under `dir`.
fn assert_absent(dir: &Path, needle: &str) {
    for path in files(dir) {
        assert!(
            !path.display().to_string().contains(needle),
            "{}",
            path.display()
        );
        let bytes = fs::read(&path).unwrap();
        let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "{} holds {needle:?} in the clear", path.display());
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

fn stored_files(repo: &Path, sub: &str) -> Vec<PathBuf> {
    files(&repo.join(sub))
}

#[test]
fn an_encrypted_repository_restores_what_it_took_and_holds_no_name_or_content_in_the_clear() {
    let s = setup();
    let cache = s.tmp.path().join("cache");
    let first = create_encrypted(&s);
    fs::write(s.data.join("later.txt"), format!("{MARKER} again\n")).unwrap();
    let second = keyed("ops-snapshot", &s.pass)
        .env("OPS_CACHE_DIR", &cache)
        .arg("create")
        .arg(&s.data)
        .arg("--repo")
        .arg(&s.repo)
        .run()
        .success()
        .record();
    assert_eq!(second["parent"], first["id"]);
    assert!(
        second["added_bytes"].as_u64().unwrap() < 100_000,
        "{second}"
    );

    let config: Value =
        serde_json::from_str(&fs::read_to_string(s.repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 2);
    assert_eq!(config["encryption"]["cipher"], "xchacha20-poly1305");

    let target = s.tmp.path().join("restored");
    keyed("ops-snapshot", &s.pass)
        .args(["restore", "latest", "--repo"])
        .arg(&s.repo)
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    assert_same_tree(&s.data, &target);

    for dir in [&s.repo, &cache] {
        assert_absent(dir, MARKER);
        assert_absent(dir, PASSPHRASE);
    }
    let listed = keyed("ops-snapshot", &s.pass)
        .args(["list", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    assert_eq!(listed.records().len(), 2);
    assert!(!listed.stdout.contains(PASSPHRASE) && !listed.stderr.contains(PASSPHRASE));

    keyed("ops-verify", &s.pass)
        .args(["--read-data", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    let health = keyed("ops-health", &s.pass)
        .args(["--max-age", "1h", "--json", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    health.stdout_contains("\"ok\"");
}

#[test]
fn without_the_key_it_says_what_to_give_and_with_a_wrong_one_nothing_is_written() {
    let s = setup();
    create_encrypted(&s);
    let target = s.tmp.path().join("restored");
    let before = files(&s.repo);

    let missing = ops_keyless("ops-snapshot")
        .args(["restore", "latest", "--repo"])
        .arg(&s.repo)
        .arg("--to")
        .arg(&target)
        .run()
        .fails_with(2);
    missing.stderr_contains("is encrypted");
    missing.stderr_contains("OPS_PASSWORD_FILE");
    missing.stderr_contains("--identity");
    assert!(!target.exists());

    let wrong = password_file(s.tmp.path(), "wrong.pass", "not it");
    for args in [&["restore", "latest", "--to"][..], &["create"]] {
        let mut run = keyed("ops-snapshot", &wrong).args(args);
        run = if args[0] == "restore" {
            run.arg(&target)
        } else {
            run.arg(&s.data)
        };
        let out = run.arg("--repo").arg(&s.repo).run().fails_with(1);
        out.stderr_contains("none of the keys given");
        out.stderr_contains(&s.repo.display().to_string());
        assert!(!target.exists());
    }
    assert_eq!(
        files(&s.repo),
        before,
        "a wrong key wrote to the repository"
    );

    fs::set_permissions(&s.pass, fs::Permissions::from_mode(0o644)).unwrap();
    keyed("ops-snapshot", &s.pass)
        .args(["list", "--repo"])
        .arg(&s.repo)
        .run()
        .fails_with(2)
        .stderr_contains("chmod 600");
}

#[test]
fn every_flipped_byte_is_caught_with_the_key_and_without_it() {
    let s = setup();
    create_encrypted(&s);
    keyed("ops-verify", &s.pass)
        .args(["--read-data", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    let mut stored = stored_files(&s.repo, "packs");
    stored.extend(stored_files(&s.repo, "snapshots"));
    assert!(stored.len() >= 2, "{stored:?}");
    for path in stored {
        let original = fs::read(&path).unwrap();
        let len = original.len();
        for at in [0, 30, len / 3, len / 2, len - 41, len - 1] {
            flip_byte(&path, at);
            let without = ops_keyless("ops-verify")
                .args(["--read-data", "--repo"])
                .arg(&s.repo)
                .run();
            assert_eq!(without.code, 1, "{} at {at}: {without:?}", path.display());
            let with = keyed("ops-verify", &s.pass)
                .args(["--read-data", "--repo"])
                .arg(&s.repo)
                .run();
            assert_eq!(with.code, 1, "{} at {at}: {with:?}", path.display());
            fs::write(&path, &original).unwrap();
        }
    }
    let quick = ops_keyless("ops-verify")
        .args(["--read-data", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    quick.stderr_contains("checked as stored");
    assert_eq!(quick.record()["verify"]["level"], "quick");
}

#[test]
fn a_snapshot_planted_by_someone_without_the_key_is_refused() {
    let s = setup();
    create_encrypted(&s);
    // A self-consistent manifest (named by its hash) from a repository
    // with another key.
    let other = Setup {
        repo: s.tmp.path().join("other"),
        pass: password_file(s.tmp.path(), "other.pass", "another one"),
        data: s.data.clone(),
        tmp: tempdir().unwrap(),
    };
    let planted = create_encrypted(&other);
    let id = planted["id"].as_str().unwrap();
    fs::copy(
        other.repo.join("snapshots").join(id),
        s.repo.join("snapshots").join(id),
    )
    .unwrap();
    let listed = keyed("ops-snapshot", &s.pass)
        .args(["list", "--repo"])
        .arg(&s.repo)
        .run();
    assert_ne!(listed.code, 0, "{listed:?}");
    listed.stderr_contains(id);
    let verified = keyed("ops-verify", &s.pass)
        .args(["--repo"])
        .arg(&s.repo)
        .run()
        .fails_with(1);
    verified.stderr_contains(&id[..8]);
}

#[test]
fn a_new_password_replaces_the_old_without_rewriting_data() {
    let s = setup();
    create_encrypted(&s);
    let packs = stored_files(&s.repo, "packs");
    let new = password_file(s.tmp.path(), "new.pass", "a brand new one");

    let added = keyed("ops-snapshot", &s.pass)
        .args(["key", "add", "--new-password-file"])
        .arg(&new)
        .arg("--repo")
        .arg(&s.repo)
        .run()
        .success()
        .record();
    assert_eq!(added["type"], "key");
    assert_eq!(added["kind"], "passphrase");
    let listed = ops_keyless("ops-snapshot")
        .args(["key", "list", "--repo"])
        .arg(&s.repo)
        .run()
        .success()
        .records();
    assert_eq!(listed.len(), 2);
    let old_id = listed.iter().find(|k| k["id"] != added["id"]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    keyed("ops-snapshot", &s.pass)
        .args(["key", "remove", &old_id[..8], "--repo"])
        .arg(&s.repo)
        .run()
        .fails_with(2)
        .stderr_contains("opened");
    keyed("ops-snapshot", &new)
        .args(["key", "remove", &old_id[..8], "--repo"])
        .arg(&s.repo)
        .run()
        .success();

    keyed("ops-snapshot", &s.pass)
        .args(["list", "--repo"])
        .arg(&s.repo)
        .run()
        .fails_with(1)
        .stderr_contains("none of the keys given");
    let target = s.tmp.path().join("restored");
    keyed("ops-snapshot", &new)
        .args(["restore", "latest", "--repo"])
        .arg(&s.repo)
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    assert_same_tree(&s.data, &target);
    assert_eq!(stored_files(&s.repo, "packs"), packs);
}

#[test]
fn a_slot_for_a_public_key_opens_with_its_identity() {
    let s = setup();
    let key = s.tmp.path().join("repo.key");
    let public = ops("ops-backup")
        .args(["keygen", "--output"])
        .arg(&key)
        .run()
        .success()
        .stdout
        .trim()
        .to_owned();
    ops_keyless("ops-snapshot")
        .arg("create")
        .arg(&s.data)
        .args(["--repo"])
        .arg(&s.repo)
        .args(["--encrypt", "--recipient", &public])
        .run()
        .success();
    let again = ops_keyless("ops-snapshot")
        .arg("create")
        .arg(&s.data)
        .arg("--repo")
        .arg(&s.repo)
        .run()
        .fails_with(2);
    again.stderr_contains("--identity");
    let listed = ops_keyless("ops-snapshot")
        .args(["key", "list", "--repo"])
        .arg(&s.repo)
        .run()
        .success()
        .record();
    assert_eq!(listed["kind"], "recipient");
    assert_eq!(listed["recipients"][0], public.as_str());

    let target = s.tmp.path().join("restored");
    ops_keyless("ops-snapshot")
        .args(["restore", "latest", "--repo"])
        .arg(&s.repo)
        .arg("--identity")
        .arg(&key)
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    assert_same_tree(&s.data, &target);
    let secret = fs::read_to_string(&key).unwrap();
    assert_absent(&s.repo, secret.lines().last().unwrap());

    ops_keyless("ops-snapshot")
        .args(["key", "add", "--recipient", "age1notakey", "--repo"])
        .arg(&s.repo)
        .arg("--identity")
        .arg(&key)
        .run()
        .fails_with(2)
        .stderr_contains("not an age public key");
}

#[test]
fn prune_and_gc_keep_an_encrypted_repository_whole() {
    let s = setup();
    create_encrypted(&s);
    fs::write(s.data.join("big.bin"), pseudo_random(2 << 20, 8)).unwrap();
    create_encrypted(&s);
    keyed("ops-prune", &s.pass)
        .args(["--keep-last", "1", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    keyed("ops-snapshot", &s.pass)
        .args(["gc", "--max-unused", "0%", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    keyed("ops-verify", &s.pass)
        .args(["--read-data", "--repo"])
        .arg(&s.repo)
        .run()
        .success();
    let target = s.tmp.path().join("restored");
    keyed("ops-snapshot", &s.pass)
        .args(["restore", "latest", "--repo"])
        .arg(&s.repo)
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    assert_same_tree(&s.data, &target);
}

#[test]
fn what_cannot_be_done_encrypted_is_refused_clearly() {
    let s = setup();
    create_encrypted(&s);
    let copy = keyed("ops-snapshot", &s.pass)
        .args(["copy", "latest", "--repo"])
        .arg(&s.repo)
        .arg("--to")
        .arg(s.tmp.path().join("copy"))
        .run()
        .fails_with(2);
    copy.stderr_contains("encrypted");
    assert!(!s.tmp.path().join("copy").exists());

    let clear = s.tmp.path().join("clear");
    ops_keyless("ops-snapshot")
        .arg("create")
        .arg(&s.data)
        .arg("--repo")
        .arg(&clear)
        .run()
        .success();
    keyed("ops-snapshot", &s.pass)
        .arg("create")
        .arg(&s.data)
        .arg("--repo")
        .arg(&clear)
        .arg("--encrypt")
        .run()
        .fails_with(2)
        .stderr_contains("exists unencrypted");
    ops_keyless("ops-snapshot")
        .args(["key", "list", "--repo"])
        .arg(&clear)
        .run()
        .fails_with(2)
        .stderr_contains("not encrypted");

    // A reader of an older format refuses a newer one rather than misread it.
    let path = s.repo.join("config");
    let mut config: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["version"] = 3.into();
    fs::write(&path, config.to_string()).unwrap();
    keyed("ops-snapshot", &s.pass)
        .args(["list", "--repo"])
        .arg(&s.repo)
        .run()
        .fails_with(2)
        .stderr_contains("newer");
}

#[test]
fn a_repository_replaced_by_someone_without_the_key_is_not_written_to() {
    let s = setup();
    create_encrypted(&s);
    let stranger = password_file(s.tmp.path(), "stranger.pass", "the stranger's");
    let create = |pass: &Path, encrypt: bool| {
        let mut run = keyed("ops-snapshot", pass)
            .arg("create")
            .arg(&s.data)
            .arg("--repo")
            .arg(&s.repo);
        if encrypt {
            run = run.arg("--encrypt");
        }
        run.run()
    };

    // Deleted, then made again: in the clear, or under the stranger's key.
    fs::remove_dir_all(&s.repo).unwrap();
    let refused = create(&s.pass, false).fails_with(1);
    refused.stderr_contains("no repository is there now");
    refused.stderr_contains("remove");
    assert!(!s.repo.exists());
    create(&stranger, true).fails_with(1);
    assert!(!s.repo.exists());

    // Replaced while we were away: another config and slot there.
    let elsewhere = s.tmp.path().join("elsewhere");
    keyed("ops-snapshot", &stranger)
        .arg("create")
        .arg(&stranger)
        .arg("--repo")
        .arg(&elsewhere)
        .arg("--encrypt")
        .run()
        .success();
    fs::rename(&elsewhere, &s.repo).unwrap();
    let before = files(&s.repo);
    create(&s.pass, true)
        .fails_with(1)
        .stderr_contains("someone may have replaced it");
    create(&stranger, true)
        .fails_with(1)
        .stderr_contains("it is now another repository");
    assert_eq!(files(&s.repo), before);
}

#[test]
fn damaged_or_missing_key_slots_fail_verification() {
    let s = setup();
    create_encrypted(&s);
    let new = password_file(s.tmp.path(), "new.pass", "a second one");
    let added = keyed("ops-snapshot", &s.pass)
        .args(["key", "add", "--new-password-file"])
        .arg(&new)
        .arg("--repo")
        .arg(&s.repo)
        .run()
        .success()
        .record();
    let new_slot = s.repo.join("keys").join(added["id"].as_str().unwrap());
    let slots = stored_files(&s.repo, "keys");
    assert_eq!(slots.len(), 2);
    let old_slot = slots.iter().find(|p| **p != new_slot).unwrap();
    let verify = |run: Run| run.args(["--repo"]).arg(&s.repo).run();

    let mut slot: Value = serde_json::from_str(&fs::read_to_string(&new_slot).unwrap()).unwrap();
    slot["sealed"] = "not hex".into();
    fs::write(&new_slot, slot.to_string()).unwrap();
    for run in [ops_keyless("ops-verify"), keyed("ops-verify", &s.pass)] {
        let out = verify(run);
        assert_eq!(out.code, 1, "{out:?}");
        out.stderr_contains("unreadable");
    }

    fs::remove_file(old_slot).unwrap();
    for run in [ops_keyless("ops-verify"), keyed("ops-verify", &s.pass)] {
        let out = verify(run);
        assert_eq!(out.code, 1, "{out:?}");
        out.stderr_contains("no readable key slot");
    }

    for i in 0..65 {
        fs::write(s.repo.join("keys").join(format!("{i:032x}")), "{}").unwrap();
    }
    keyed("ops-snapshot", &s.pass)
        .args(["list", "--repo"])
        .arg(&s.repo)
        .run()
        .fails_with(1)
        .stderr_contains("more than the 64");
}
