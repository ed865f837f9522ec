//! ops-snapshot as its man page describes it: snapshots that restore
//! byte-identical, store unchanged data once, read only what changed, and
//! refuse what they cannot do safely.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ops_tests::{assert_same_tree, is_root, ops, pseudo_random, sample_tree, SmallDisk};
use serde_json::Value;
use tempfile::tempdir;

fn snapshot(data: &Path, repo: &Path, extra: &[&str]) -> Value {
    ops("ops-snapshot")
        .arg("create")
        .arg(data)
        .arg("--repo")
        .arg(repo)
        .args(extra)
        .run()
        .success()
        .record()
}

fn restore(repo: &Path, id: &str, to: &Path, extra: &[&str]) -> Value {
    ops("ops-snapshot")
        .args(["restore", id, "--repo"])
        .arg(repo)
        .arg("--to")
        .arg(to)
        .args(extra)
        .run()
        .success()
        .record()
}

fn packs(repo: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(repo.join("packs"))
        .min_depth(2)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn help_and_bad_arguments() {
    let help = ops("ops-snapshot").arg("--help").run().success();
    for word in ["create", "restore", "diff", "export", "gc", "rebuild-index"] {
        assert!(help.stdout.contains(word), "{word}: {}", help.stdout);
    }
    ops("ops-snapshot").run().fails_with(2);
    ops("ops-snapshot")
        .args(["create", "/tmp"])
        .run()
        .fails_with(2);
    let out = ops("ops-snapshot").args(["list"]).run().fails_with(2);
    out.stderr_contains("--repo");
    ops("ops-snapshot")
        .args(["gc", "--repo", "/tmp/x", "--max-unused", "150%"])
        .run()
        .fails_with(2);
}

#[test]
fn a_snapshot_restores_byte_identical_with_links_modes_and_times() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let repo = tmp.path().join("repo");
    let record = snapshot(&data, &repo, &[]);
    assert_eq!(record["type"], "snapshot");
    assert_eq!(record["v"], 1);
    assert_eq!(record["name"], "data");
    assert_eq!(record["parent"], Value::Null);
    assert_eq!(record["files"], 8);
    assert!(record["added_bytes"].as_u64().unwrap() > 0);
    let id = record["id"].as_str().unwrap();

    let to = tmp.path().join("restored");
    let restored = restore(&repo, &id[..8], &to, &[]);
    assert_eq!(restored["restore"]["ok"], true);
    assert_same_tree(&data, &to);

    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&repo), 0o700);
    for pack in packs(&repo) {
        assert_eq!(mode(&pack), 0o600, "{}", pack.display());
    }
}

#[test]
fn unchanged_files_are_not_read_again_and_unchanged_data_is_stored_once() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    for i in 0..20 {
        fs::write(data.join(format!("f{i}.bin")), pseudo_random(200_000, i)).unwrap();
    }
    let repo = tmp.path().join("repo");
    let first = snapshot(&data, &repo, &[]);
    assert_eq!(first["files_read"], 20);

    let again = snapshot(&data, &repo, &[]);
    assert_eq!(again["files_read"], 0);
    assert_eq!(again["parent"], first["id"]);
    assert!(again["added_bytes"].as_u64().unwrap() < 10_000, "{again}");

    fs::write(data.join("f3.bin"), pseudo_random(200_000, 99)).unwrap();
    fs::copy(data.join("f5.bin"), data.join("copy-of-f5.bin")).unwrap();
    let third = snapshot(&data, &repo, &[]);
    assert_eq!(third["files_read"], 2);
    let added = third["added_bytes"].as_u64().unwrap();
    assert!(
        (200_000..260_000).contains(&added),
        "only f3 is new data: {third}"
    );

    let to = tmp.path().join("out");
    restore(&repo, "latest", &to, &[]);
    assert_same_tree(&data, &to);
}

#[test]
fn list_shows_every_snapshot_oldest_first_and_latest_is_the_newest() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a"), "one").unwrap();
    let repo = tmp.path().join("repo");
    let first = snapshot(&data, &repo, &["--name", "app"]);
    fs::write(data.join("a"), "two").unwrap();
    let second = snapshot(&data, &repo, &["--name", "app"]);
    let listed = ops("ops-snapshot")
        .arg("list")
        .arg("--repo")
        .arg(&repo)
        .run()
        .success()
        .records();
    let ids: Vec<&Value> = listed.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&first["id"], &second["id"]]);
    assert!(listed
        .iter()
        .all(|r| r["name"] == "app" && r["repo"] == repo.to_str().unwrap()));
    let to = tmp.path().join("out");
    restore(&repo, "latest", &to, &[]);
    assert_eq!(fs::read_to_string(to.join("a")).unwrap(), "two");
}

#[test]
fn exclude_and_restore_of_one_path() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir_all(data.join("uploads/2025")).unwrap();
    fs::create_dir_all(data.join("uploads/2026")).unwrap();
    fs::write(data.join("uploads/2025/a.jpg"), "old").unwrap();
    fs::write(data.join("uploads/2026/b.jpg"), "new").unwrap();
    fs::write(data.join("uploads/2026/scratch.tmp"), "tmp").unwrap();
    let repo = tmp.path().join("repo");
    snapshot(&data, &repo, &["--exclude", "*.tmp"]);
    let to = tmp.path().join("x");
    let restored = restore(&repo, "latest", &to, &["--path", "uploads/2026"]);
    assert_eq!(
        fs::read_to_string(to.join("uploads/2026/b.jpg")).unwrap(),
        "new"
    );
    assert!(!to.join("uploads/2025").exists());
    assert!(!to.join("uploads/2026/scratch.tmp").exists());
    assert_eq!(restored["restore"]["entries"], 3, "{restored}");
}

#[test]
fn diff_reports_added_removed_modified_and_metadata_changes() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    for name in ["keep", "change", "remove", "chmod"] {
        fs::write(data.join(name), name).unwrap();
    }
    let repo = tmp.path().join("repo");
    let first = snapshot(&data, &repo, &[]);
    fs::write(data.join("change"), "changed").unwrap();
    fs::remove_file(data.join("remove")).unwrap();
    fs::write(data.join("added"), "new").unwrap();
    fs::set_permissions(data.join("chmod"), fs::Permissions::from_mode(0o600)).unwrap();
    snapshot(&data, &repo, &[]);
    let changes = ops("ops-snapshot")
        .args(["diff", first["id"].as_str().unwrap(), "latest", "--repo"])
        .arg(&repo)
        .run()
        .success()
        .records();
    let summary: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("added", "added"),
        ("modified", "change"),
        ("metadata", "chmod"),
        ("removed", "remove"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    assert_eq!(summary, expected);
    assert!(changes.iter().all(|c| c["type"] == "diff"));
}

#[test]
fn export_writes_an_archive_gnu_tar_extracts_to_the_same_tree() {
    // In-process calls and children must use the tests' index cache.
    std::env::set_var("OPS_CACHE_DIR", ops_tests::test_cache());
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let repo = tmp.path().join("repo");
    snapshot(&data, &repo, &[]);
    let archive = tmp.path().join("data.tar.zst");
    let out = Command::new(ops_tests::bin_dir().join("ops-snapshot"))
        .args(["export", "latest", "--repo"])
        .arg(&repo)
        .stdout(fs::File::create(&archive).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let tar = Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&plain)
        .status()
        .unwrap();
    assert!(tar.success());
    assert_same_tree(&data, &plain);
}

#[test]
fn gc_reclaims_what_no_snapshot_needs_and_the_rest_still_restores() {
    let tmp = tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    fs::write(a.join("big.bin"), pseudo_random(4 << 20, 1)).unwrap();
    fs::write(b.join("other.bin"), pseudo_random(1 << 20, 2)).unwrap();
    let repo = tmp.path().join("repo");
    let first = snapshot(&a, &repo, &[]);
    snapshot(&b, &repo, &[]);

    let dry = ops("ops-snapshot")
        .args(["gc", "--dry-run", "--repo"])
        .arg(&repo)
        .run()
        .success()
        .record();
    assert_eq!(dry["action"], "plan");
    assert_eq!(
        dry["before_bytes"], dry["after_bytes"],
        "nothing unused yet: {dry}"
    );

    fs::remove_file(repo.join("snapshots").join(first["id"].as_str().unwrap())).unwrap();
    let before = packs(&repo);
    let record = ops("ops-snapshot")
        .args(["gc", "--repo"])
        .arg(&repo)
        .run()
        .success()
        .record();
    assert_eq!(record["type"], "compact");
    assert_eq!(record["kind"], "repo");
    let (was, now) = (
        record["before_bytes"].as_u64().unwrap(),
        record["after_bytes"].as_u64().unwrap(),
    );
    assert!(was - now > 4_000_000, "{record}");
    assert!(packs(&repo).len() < before.len());

    let to = tmp.path().join("out");
    restore(&repo, "latest", &to, &[]);
    assert_same_tree(&b, &to);
    let again = ops("ops-snapshot")
        .args(["gc", "--repo"])
        .arg(&repo)
        .run()
        .success()
        .record();
    assert_eq!(again["action"], "none", "{again}");
}

#[test]
fn the_index_is_a_cache_rebuilt_from_the_packs() {
    std::env::set_var("OPS_CACHE_DIR", ops_tests::test_cache());
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let repo = tmp.path().join("repo");
    snapshot(&data, &repo, &[]);
    let index = ops_snapshot::Repo::open(&repo).unwrap().index_dir();
    assert!(
        index.starts_with(ops_tests::test_cache()),
        "{}",
        index.display()
    );
    fs::remove_dir_all(&index).unwrap();
    let to = tmp.path().join("out");
    restore(&repo, "latest", &to, &[]);
    assert_same_tree(&data, &to);
    let out = ops("ops-snapshot")
        .args(["rebuild-index", "--repo"])
        .arg(&repo)
        .run()
        .success();
    out.stderr_contains("chunks in");
    let again = snapshot(&data, &repo, &[]);
    assert!(again["added_bytes"].as_u64().unwrap() < 10_000, "{again}");
}

#[test]
fn not_a_repository_and_a_newer_format_are_refused() {
    let tmp = tempdir().unwrap();
    fs::write(tmp.path().join("file"), "x").unwrap();
    let out = ops("ops-snapshot")
        .args(["list", "--repo"])
        .arg(tmp.path())
        .run()
        .fails_with(2);
    out.stderr_contains("not an ops-snapshot repository");

    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    let repo = tmp.path().join("repo");
    snapshot(&data, &repo, &[]);
    let config = fs::read_to_string(repo.join("config")).unwrap();
    fs::write(
        repo.join("config"),
        config.replace("\"version\": 1", "\"version\": 99"),
    )
    .unwrap();
    let out = ops("ops-snapshot")
        .args(["list", "--repo"])
        .arg(&repo)
        .run()
        .fails_with(2);
    out.stderr_contains("version 99 is newer");
    let out = ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .run()
        .fails_with(2);
    out.stderr_contains("upgrade");
}

#[test]
fn a_restore_target_that_is_not_empty_needs_force() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let repo = tmp.path().join("repo");
    snapshot(&data, &repo, &[]);
    let to = tmp.path().join("busy");
    fs::create_dir(&to).unwrap();
    fs::write(to.join("keep-me"), "x").unwrap();
    let out = ops("ops-snapshot")
        .args(["restore", "latest", "--repo"])
        .arg(&repo)
        .arg("--to")
        .arg(&to)
        .run()
        .fails_with(1);
    out.stderr_contains("--force");
    assert!(to.join("keep-me").exists());
    restore(&repo, "latest", &to, &["--force"]);
    assert_same_tree(&data, &to);
    let out = ops("ops-snapshot")
        .args(["restore", "nosuch", "--repo"])
        .arg(&repo)
        .arg("--to")
        .arg(tmp.path().join("n"))
        .run()
        .fails_with(2);
    out.stderr_contains("no snapshot");
}

#[test]
fn a_restore_from_a_record_on_stdin() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    sample_tree(&data);
    let repo = tmp.path().join("repo");
    let record = snapshot(&data, &repo, &[]);
    let to = tmp.path().join("out");
    let other = r#"{"type":"check","v":1,"check":"disk","target":"/","status":"ok","message":"","metrics":{}}"#;
    let out = ops("ops-snapshot")
        .arg("restore")
        .arg("--to")
        .arg(&to)
        .stdin(format!("{other}\n{record}\n"))
        .run()
        .success();
    assert_eq!(out.stdout.lines().next().unwrap(), other);
    assert_same_tree(&data, &to);
    ops("ops-snapshot")
        .arg("restore")
        .arg("--to")
        .arg(tmp.path().join("y"))
        .stdin("{nope\n")
        .run()
        .fails_with(2);
}

#[test]
fn unreadable_files_fail_the_snapshot_unless_skipped() {
    if !is_root() {
        eprintln!("skipped: needs root to run as nobody");
        return;
    }
    let tmp = tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("ok"), "fine").unwrap();
    fs::write(data.join("secret"), "no").unwrap();
    fs::set_permissions(data.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    let repo = tmp.path().join("repo");
    let as_nobody = |extra: &str| {
        ops_tests::sh(&format!(
            "OPS_CACHE_DIR={}/cache setpriv --reuid=nobody --regid=nogroup --clear-groups ops-snapshot create {} --repo {} {extra}",
            tmp.path().display(),
            data.display(),
            repo.display()
        ))
        .run()
    };
    let out = as_nobody("");
    assert_eq!(out.code, 1, "{out:?}");
    out.stderr_contains("secret")
        .stderr_contains("--skip-unreadable");
    assert!(ops_tests::names(&repo.join("snapshots")).is_empty());
    let out = as_nobody("--skip-unreadable");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.record()["files"], 1);
}

#[test]
fn a_full_disk_fails_cleanly_and_records_no_snapshot() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("big.bin"), pseudo_random(3 << 20, 5)).unwrap();
    let repo = disk.path.join("repo");
    let out = ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .run()
        .fails_with(1);
    out.stderr_contains("No space left");
    assert!(ops_tests::names(&repo.join("snapshots")).is_empty());
    let leftovers: Vec<_> = walkdir::WalkDir::new(&repo)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| ops_shared::atomic::is_temp(e.file_name()))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn restore_refuses_entries_that_escape_the_target() {
    // In-process calls and children must use the tests' index cache.
    std::env::set_var("OPS_CACHE_DIR", ops_tests::test_cache());
    use ops_snapshot::{Id, Index, Manifest, PackWriter, Repo};

    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    let root = tmp.path().join("repo");
    snapshot(&data, &root, &[]);
    for evil in ["../escaped", "/tmp/absolute", "a/../../escaped"] {
        let repo = Repo::open(&root).unwrap();
        let line = format!(
            "{{\"path\":\"{evil}\",\"kind\":\"file\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":0,\"ctime\":0,\"ino\":1,\"size\":0}}\n"
        );
        let id = Id::of(line.as_bytes());
        let stored = zstd::bulk::compress(line.as_bytes(), 3).unwrap();
        let mut pack = PackWriter::default();
        pack.add(id, &stored, line.len() as u32).unwrap();
        let sealed = pack.finish(&repo).unwrap();
        let index = Index::open(&repo, std::time::Duration::from_secs(5), "test").unwrap();
        index.add_pack(sealed.id, &sealed.entries).unwrap();
        index.flush().unwrap();
        drop(index);
        let mut manifest: Manifest = repo.resolve("latest").unwrap().1;
        manifest.tree = vec![id];
        manifest.time = jiff::Timestamp::now();
        let snapshot_id = repo.write_manifest(&manifest).unwrap();
        let to = tmp.path().join("target");
        let out = ops("ops-snapshot")
            .args(["restore", &snapshot_id, "--repo"])
            .arg(&root)
            .arg("--to")
            .arg(&to)
            .run()
            .fails_with(1);
        assert!(
            out.stderr.contains("outside the target"),
            "{evil}: {}",
            out.stderr
        );
        assert!(!to.exists() && !tmp.path().join("escaped").exists());
    }
}

#[test]
fn a_held_repository_makes_others_wait_and_names_its_holder() {
    use ops_shared::lock::{Access, DirLock};
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a"), "a").unwrap();
    let repo = tmp.path().join("repo");
    snapshot(&data, &repo, &[]);
    let held = DirLock::acquire(
        &repo,
        Access::Exclusive,
        std::time::Duration::ZERO,
        "ops-prune",
    )
    .unwrap();
    let out = ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .args(["--lock-wait", "1s"])
        .run()
        .fails_with(1);
    let pid = format!("pid {}", std::process::id());
    out.stderr_contains("locked by ops-prune")
        .stderr_contains(&pid);
    out.stderr_contains("--lock-wait");
    drop(held);
    snapshot(&data, &repo, &["--lock-wait", "1s"]);
}

#[test]
fn a_live_database_held_by_another_process_is_stored_with_a_warning_pointing_at_ops_backup() {
    let tmp = tempdir().unwrap();
    let db = tmp.path().join("app.sled");
    ops_tests::sled_db::churned_db(&db);
    let repo = tmp.path().join("repo");
    let quiet = ops("ops-snapshot")
        .arg("create")
        .arg(&db)
        .arg("--repo")
        .arg(&repo)
        .run()
        .success();
    quiet.stderr_lacks("locked");

    let holder = ops_tests::sled_db::LockHolder::hold(&db);
    let out = ops("ops-snapshot")
        .arg("create")
        .arg(&db)
        .arg("--repo")
        .arg(&repo)
        .run()
        .success();
    let held = format!(
        "{} is locked by process {}",
        db.join("db").display(),
        holder.pid()
    );
    out.stderr_contains(&held);
    let consistent = format!("ops-backup create sled:{}", db.display());
    out.stderr_contains(&consistent);
}
