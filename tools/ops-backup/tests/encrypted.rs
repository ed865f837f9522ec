//! Encrypted backups (age), as a user runs them: a host that holds only the
//! public key writes backups it cannot read; the identity's holder, or the
//! age CLI, reads them; without a key they are still checked as stored.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ops_tests::pg::cluster;
use ops_tests::sled_db::{checksum, churned_db};
use ops_tests::{assert_same_tree, names, only_file, ops, sh};
use serde_json::Value;
use tempfile::tempdir;

const MARKER: &str = "zebramarker";

/// A key pair made by `ops-backup keygen`: identity file and public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = ops("ops-backup")
        .args(["keygen", "--output"])
        .arg(&key)
        .run()
        .success();
    (key, out.stdout.trim().to_owned())
}

/// A tree whose file names and contents hold the marker.
fn marked_tree(root: &Path) {
    fs::create_dir_all(root.join(format!("{MARKER}_dir"))).unwrap();
    fs::write(
        root.join(format!("{MARKER}_dir/{MARKER}.txt")),
        format!("the {MARKER} says hello\n").repeat(1000),
    )
    .unwrap();
    fs::write(root.join("plain.txt"), "no secret here\n").unwrap();
}

/// Fails if the marker is in any stored byte of `dir`.
fn assert_marker_absent(dir: &Path) {
    for name in names(dir) {
        assert!(!name.contains(MARKER), "{name}");
        let bytes = fs::read(dir.join(&name)).unwrap();
        let found = bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
        assert!(!found, "{name} holds the marker in the clear");
    }
}

fn encrypted_backup(tmp: &Path, recipient: &str) -> (PathBuf, PathBuf, Value) {
    let data = tmp.join("data");
    marked_tree(&data);
    let backups = tmp.join("backups");
    let record = ops("ops-backup")
        .args(["create", "--recipient", recipient, "--to"])
        .arg(&backups)
        .arg(&data)
        .run()
        .success()
        .record();
    (data, backups, record)
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_tree_encrypted_to_a_public_key_restores_with_its_identity_and_with_age() {
    let tmp = tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "backup.key");
    assert!(public.starts_with("age1"), "{public}");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (data, backups, record) = encrypted_backup(tmp.path(), &public);
    assert_eq!(record["format"], "tar.zst.age");
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    assert!(artifact.to_string_lossy().ends_with(".tar.zst.age"));
    assert_marker_absent(&backups);
    sh(&format!(
        "cd {} && sha256sum -c --quiet *.sha256",
        backups.display()
    ))
    .run()
    .success();

    let listed = ops("ops-backup").arg("list").arg(&backups).run().success();
    assert_eq!(listed.records().len(), 1);
    listed.stderr_lacks("without");

    let quick = ops("ops-verify").arg(&backups).run().success();
    assert_eq!(quick.record()["verify"]["level"], "quick");
    quick.stderr_contains("--identity");
    let full = ops("ops-verify")
        .arg("--identity")
        .arg(&key)
        .arg(&backups)
        .run()
        .success();
    assert_eq!(full.record()["verify"]["level"], "full");

    let extracted = tmp.path().join("by-age");
    fs::create_dir(&extracted).unwrap();
    sh(&format!(
        "age -d -i {} {} | tar --zstd -x -C {}",
        key.display(),
        artifact.display(),
        extracted.display()
    ))
    .run()
    .success();
    assert_same_tree(&data, &extracted);

    let restored = tmp.path().join("restored");
    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&restored)
        .env("OPS_IDENTITY_FILE", &key)
        .run()
        .success();
    assert_same_tree(&data, &restored);
}

#[test]
fn without_the_right_key_nothing_is_restored_and_the_message_says_what_to_give() {
    let tmp = tempdir().unwrap();
    let (_, public) = keygen(tmp.path(), "backup.key");
    let (other, _) = keygen(tmp.path(), "other.key");
    let (_, _, record) = encrypted_backup(tmp.path(), &public);
    let artifact = record["path"].as_str().unwrap();
    let target = tmp.path().join("restored");

    let missing = ops("ops-restore")
        .args([artifact, "--to"])
        .arg(&target)
        .run()
        .fails_with(1);
    missing.stderr_contains("is encrypted");
    missing.stderr_contains("--identity");
    missing.stderr_contains("OPS_IDENTITY_FILE");
    assert!(!target.exists());

    let wrong = ops("ops-restore")
        .args([artifact, "--to"])
        .arg(&target)
        .arg("--identity")
        .arg(&other)
        .run()
        .fails_with(1);
    wrong.stderr_contains("none of the identities");
    assert!(!target.exists());
    assert!(names(tmp.path())
        .iter()
        .all(|n| !n.starts_with(".restored")));

    let failed = ops("ops-verify")
        .arg("--identity")
        .arg(&other)
        .arg(artifact)
        .run()
        .fails_with(1);
    failed.stderr_contains("none of the identities");
}

#[test]
fn damage_is_caught_with_and_without_the_key() {
    let tmp = tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "backup.key");
    let (_, backups, record) = encrypted_backup(tmp.path(), &public);
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    let size = fs::metadata(&artifact).unwrap().len() as usize;
    let original = fs::read(&artifact).unwrap();
    for at in [10, size / 2, size - 3] {
        flip_byte(&artifact, at);
        ops("ops-verify")
            .args(["--level", "quick"])
            .arg(&artifact)
            .run()
            .fails_with(1)
            .stderr_contains("checksum");
        let with_key = ops("ops-verify")
            .arg("--identity")
            .arg(&key)
            .arg(&artifact)
            .run()
            .fails_with(1);
        assert!(!with_key.stderr.is_empty());
        fs::write(&artifact, &original).unwrap();
    }

    let sealed = only_file(&backups, ".manifest.jsonl.age");
    flip_byte(&sealed, 100);
    ops("ops-verify")
        .arg(&artifact)
        .run()
        .fails_with(1)
        .stderr_contains("sealed manifest");
    ops("ops-verify")
        .arg("--identity")
        .arg(&key)
        .arg(&artifact)
        .run()
        .fails_with(1);
}

#[test]
fn keys_and_recipients_of_the_wrong_shape_are_refused_before_anything_is_written() {
    let tmp = tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "backup.key");
    let backups = tmp.path().join("backups");
    let bad = ops("ops-backup")
        .args(["create", "--recipient", "age1notakey", "--to"])
        .arg(&backups)
        .arg(tmp.path())
        .run()
        .fails_with(2);
    bad.stderr_contains("is not an age public key");
    assert!(!backups.exists());

    ops("ops-backup")
        .args(["keygen", "--output"])
        .arg(&key)
        .run()
        .fails_with(2)
        .stderr_contains("never overwrites");

    let (_, _, record) = encrypted_backup(tmp.path(), &public);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let open = ops("ops-verify")
        .arg("--identity")
        .arg(&key)
        .arg(record["path"].as_str().unwrap())
        .run()
        .fails_with(2);
    open.stderr_contains("chmod 600");
    let secret = fs::read_to_string(&key).unwrap();
    let secret_line = secret.lines().last().unwrap();
    assert!(!open.stderr.contains(secret_line));
}

#[test]
fn prune_and_copy_need_no_key_and_take_the_sealed_manifest_along() {
    let tmp = tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "backup.key");
    let (_, backups, first) = encrypted_backup(tmp.path(), &public);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ops("ops-backup")
        .args(["create", "--recipient", &public, "--to"])
        .arg(&backups)
        .arg(tmp.path().join("data"))
        .run()
        .success();

    let copies = tmp.path().join("copies");
    let listed = ops("ops-backup").arg("list").arg(&backups).run().success();
    ops("ops-backup")
        .args(["copy", "--to"])
        .arg(&copies)
        .stdin(listed.stdout.clone())
        .run()
        .success();
    assert_eq!(
        names(&copies).len(),
        names(&backups).len(),
        "{:?}",
        names(&copies)
    );
    ops("ops-verify")
        .arg("--identity")
        .arg(&key)
        .arg(&copies)
        .run()
        .success();

    ops("ops-prune")
        .args(["--keep-last", "1"])
        .arg(&backups)
        .run()
        .success();
    let left = names(&backups);
    let first_id = first["id"].as_str().unwrap();
    assert!(left.iter().all(|n| !n.starts_with(first_id)), "{left:?}");
    assert_eq!(
        left.iter()
            .filter(|n| n.ends_with(".manifest.jsonl.age"))
            .count(),
        1,
        "{left:?}"
    );
}

#[test]
fn a_sled_database_with_a_passphrase_verifies_and_restores() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("db");
    let sum = churned_db(&db);
    let password = tmp.path().join("password");
    fs::write(&password, "correct horse battery staple\n").unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    let backups = tmp.path().join("backups");
    let record = ops("ops-backup")
        .arg("create")
        .arg(format!("sled:{}", db.display()))
        .args(["--passphrase", "--to"])
        .arg(&backups)
        .env("OPS_PASSWORD_FILE", &password)
        .run()
        .success()
        .record();
    assert_eq!(record["format"], "sled.zst.age");
    let artifact = record["path"].as_str().unwrap();
    let outline = only_file(&backups, ".manifest.jsonl");
    let outline = fs::read_to_string(outline).unwrap();
    assert!(outline.contains(r#""passphrase":true"#), "{outline}");
    assert!(!outline.contains("content_checksum") && !outline.contains("\"tree\""));

    let tested = ops("ops-verify")
        .args(["--restore-test", artifact])
        .env("OPS_PASSWORD_FILE", &password)
        .run()
        .success();
    assert_eq!(tested.record()["verify"]["level"], "restore");

    let wrong = tmp.path().join("wrong");
    fs::write(&wrong, "not it\n").unwrap();
    fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
    ops("ops-verify")
        .arg(artifact)
        .env("OPS_PASSWORD_FILE", &wrong)
        .run()
        .fails_with(1)
        .stderr_contains("passphrase does not open");

    let restored = tmp.path().join("restored");
    ops("ops-restore")
        .args([artifact, "--to"])
        .arg(&restored)
        .env(
            "OPS_PASSWORD_COMMAND",
            format!("cat {}", password.display()),
        )
        .run()
        .success();
    assert_eq!(checksum(&restored), sum);
}

#[test]
fn database_dumps_encrypted_restore_test_and_pipe_through_age_into_psql() {
    let pg = cluster();
    pg.create_db("sealed_shop");
    pg.psql(
        "sealed_shop",
        &format!(
            "CREATE TABLE {MARKER}_items (id int PRIMARY KEY, label text); \
             INSERT INTO {MARKER}_items SELECT g, '{MARKER} ' || g FROM generate_series(1, 2000) g;"
        ),
    );
    let tmp = tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "backup.key");
    let backups = tmp.path().join("backups");
    for format in ["plain", "custom"] {
        let record = ops("ops-backup")
            .args(["create", &pg.url("sealed_shop"), "--format", format])
            .args(["--recipient", &public, "--to"])
            .arg(&backups)
            .run()
            .success()
            .record();
        let expected = if format == "plain" {
            "sql.zst.age"
        } else {
            "dump.age"
        };
        assert_eq!(record["format"], expected);
        let tested = ops("ops-verify")
            .args(["--restore-test", record["path"].as_str().unwrap()])
            .arg("--identity")
            .arg(&key)
            .run()
            .success();
        assert_eq!(tested.record()["verify"]["level"], "restore");
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_marker_absent(&backups);

    let untested = ops("ops-verify")
        .arg("--restore-test")
        .arg(&backups)
        .run()
        .fails_with(1);
    untested.stderr_contains("no key is at hand");

    pg.create_db("sealed_copy");
    let plain = only_file(&backups, ".sql.zst.age");
    sh(&format!(
        "age -d -i {} {} | zstd -dc | psql -X -q -v ON_ERROR_STOP=1 '{}' >/dev/null",
        key.display(),
        plain.display(),
        pg.url("sealed_copy")
    ))
    .run()
    .success();
    assert_eq!(
        pg.content_hashes("sealed_copy"),
        pg.content_hashes("sealed_shop")
    );
}
