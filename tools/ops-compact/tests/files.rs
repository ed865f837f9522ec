//! ops-compact --files: old plain files become FILE.zst with the same bytes,
//! mode and times; recent, compressed, hard-linked and open files are left
//! alone; bad input is refused with a clear message.
#![allow(clippy::unwrap_used, clippy::panic)]
// A test that tells one story end to end reads better whole.
#![allow(clippy::too_many_lines)]

use std::fs::{self, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use ops_tests::{names, ops, pseudo_random};
use serde_json::Value;
use tempfile::tempdir;

/// Writes `bytes` to `path` with `mode`, last modified `days` ago (with a
/// sub-second part, which must survive too).
fn old_file(path: &Path, bytes: &[u8], mode: u32, days: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let when =
        SystemTime::now() - Duration::from_secs(days * 86400) - Duration::from_nanos(123_456_789);
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_times(FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
}

fn by_target(records: &[Value], path: &Path) -> Value {
    let wanted = path.to_str().unwrap();
    records
        .iter()
        .find(|r| r["target"] == wanted)
        .unwrap_or_else(|| panic!("no record for {wanted}: {records:?}"))
        .clone()
}

/// The standard tool reads what we wrote.
fn zstd_dc(path: &Path) -> Vec<u8> {
    let out = Command::new("zstd").arg("-dc").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "zstd -dc {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn help_and_bad_input() {
    let help = ops("ops-compact").arg("--help").run().success();
    for flag in [
        "--files",
        "--older-than",
        "--min-dead",
        "--full",
        "--lock-timeout",
        "--min-reclaim",
    ] {
        assert!(help.stdout.contains(flag), "--help lacks {flag}");
    }
    let out = ops("ops-compact")
        .args(["--files", "/nonexistent/raw"])
        .run()
        .fails_with(2);
    assert!(
        out.stderr
            .contains("--files /nonexistent/raw: no such file or directory"),
        "{}",
        out.stderr
    );
    let out = ops("ops-compact")
        .args(["--files", ".", "--older-than", "soon"])
        .run()
        .fails_with(2);
    out.stderr_contains("invalid duration \"soon\"");
    let out = ops("ops-compact")
        .args(["--files", ".", "--full"])
        .run()
        .fails_with(2);
    out.stderr_contains("--full applies to PostgreSQL targets");
    let out = ops("ops-compact")
        .args(["--files", ".", "--level", "30"])
        .run()
        .fails_with(2);
    out.stderr_contains("--level");
    ops("ops-compact")
        .args(["sled:/x", "--files", "."])
        .run()
        .fails_with(2);
    let tmp = tempdir().unwrap();
    let out = ops("ops-compact").arg(tmp.path()).run().fails_with(2);
    out.stderr_contains("use --files");
}

#[test]
fn a_backup_directory_is_refused() {
    let (tmp, _data, _record) = ops_tests::backed_up_sample();
    let backups = tmp.path().join("backups");
    let before = names(&backups);
    let out = ops("ops-compact")
        .arg("--files")
        .arg(&backups)
        .args(["--older-than", "0s"])
        .run()
        .fails_with(2);
    out.stderr_contains("holds backups");
    assert_eq!(names(&backups), before);
}

#[test]
fn old_files_round_trip_with_mode_and_times_kept() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let text = "{\"n\":1,\"title\":\"a post\"}\n"
        .repeat(20000)
        .into_bytes();
    let random = pseudo_random(200_000, 3);
    // Larger than what is compressed in memory: the streaming path.
    let large: Vec<u8> = text.iter().copied().cycle().take(17 << 20).collect();
    old_file(&raw.join("posts.jsonl"), &text, 0o640, 10);
    old_file(&raw.join("2026/blob.bin"), &random, 0o600, 30);
    old_file(&raw.join("2026/big.jsonl"), &large, 0o755, 8);
    old_file(&raw.join("empty.log"), b"", 0o644, 9);
    let originals: Vec<_> = [
        "posts.jsonl",
        "2026/blob.bin",
        "2026/big.jsonl",
        "empty.log",
    ]
    .iter()
    .map(|name| {
        let path = raw.join(name);
        (
            path.clone(),
            fs::read(&path).unwrap(),
            fs::metadata(&path).unwrap(),
        )
    })
    .collect();

    let plan = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .args(["--older-than", "7d", "--dry-run"])
        .run()
        .success()
        .records();
    assert_eq!(plan.len(), 4, "{plan:?}");
    assert!(
        plan.iter().all(|r| r["action"] == "would-compress"),
        "{plan:?}"
    );
    for (path, bytes, _) in &originals {
        assert_eq!(&fs::read(path).unwrap(), bytes, "a dry run changes nothing");
    }

    let records = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .args(["--older-than", "7d"])
        .run()
        .success()
        .records();
    assert_eq!(records.len(), 4, "{records:?}");
    for (path, bytes, meta) in &originals {
        let record = by_target(&records, path);
        assert_eq!(record["type"], "compact");
        assert_eq!(record["kind"], "file");
        assert_eq!(record["action"], "compressed", "{record}");
        assert_eq!(record["before_bytes"], bytes.len() as u64);
        let zst = ops_shared::atomic::with_suffix(path, ".zst");
        assert_eq!(record["output"], zst.to_str().unwrap());
        assert!(!path.exists(), "{} was not removed", path.display());
        let packed = fs::metadata(&zst).unwrap();
        assert_eq!(record["after_bytes"], packed.len());
        assert_eq!(&zstd_dc(&zst), bytes, "{}", zst.display());
        assert_eq!(
            packed.mode() & 0o7777,
            meta.mode() & 0o7777,
            "mode of {}",
            zst.display()
        );
        assert_eq!(
            (packed.mtime(), packed.mtime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
            "mtime of {}",
            zst.display()
        );
        assert_eq!((packed.uid(), packed.gid()), (meta.uid(), meta.gid()));
    }
    let posts = by_target(&records, &raw.join("posts.jsonl"));
    assert!(posts["after_bytes"].as_u64().unwrap() * 10 < posts["before_bytes"].as_u64().unwrap());
    let test = Command::new("zstd")
        .arg("-tq")
        .arg(raw.join("posts.jsonl.zst"))
        .status()
        .unwrap();
    assert!(test.success(), "zstd -t");
    assert_eq!(
        names(&raw),
        ["2026", "empty.log.zst", "posts.jsonl.zst"],
        "no temporary files left"
    );
    assert_eq!(names(&raw.join("2026")), ["big.jsonl.zst", "blob.bin.zst"]);

    // A second run finds nothing left to do.
    let again = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .args(["--older-than", "7d"])
        .run()
        .success();
    assert_eq!(again.stdout, "");
}

#[test]
fn recent_linked_existing_and_open_files_are_left_alone() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("raw");
    old_file(&raw.join("old.log"), b"old\n", 0o644, 10);
    old_file(&raw.join("fresh.log"), b"fresh\n", 0o644, 0);
    old_file(&raw.join("linked.log"), b"linked\n", 0o644, 10);
    fs::hard_link(raw.join("linked.log"), tmp.path().join("other-name.log")).unwrap();
    old_file(&raw.join("taken.log"), b"taken\n", 0o644, 10);
    fs::write(raw.join("taken.log.zst"), b"someone else's").unwrap();
    old_file(&raw.join("archive.log.gz"), b"not really gzip", 0o644, 10);
    old_file(&raw.join("busy.log"), b"being written\n", 0o644, 10);
    // This test process holds busy.log open for writing, as a logger would.
    let _writer = fs::OpenOptions::new()
        .append(true)
        .open(raw.join("busy.log"))
        .unwrap();

    let records = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .args(["--older-than", "1d"])
        .run()
        .success()
        .records();
    let reason = |name: &str| {
        by_target(&records, &raw.join(name))["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        by_target(&records, &raw.join("old.log"))["action"],
        "compressed"
    );
    assert!(
        reason("fresh.log").contains("within --older-than 1day"),
        "{}",
        reason("fresh.log")
    );
    assert!(
        reason("linked.log").contains("2 hard links"),
        "{}",
        reason("linked.log")
    );
    assert!(
        reason("taken.log").contains("taken.log.zst exists"),
        "{}",
        reason("taken.log")
    );
    let busy = reason("busy.log");
    assert!(
        busy.contains(&format!("open for writing by pid {}", std::process::id())),
        "{busy}"
    );
    for name in ["fresh.log", "linked.log", "taken.log", "busy.log"] {
        assert_eq!(
            by_target(&records, &raw.join(name))["action"],
            "skipped",
            "{name}"
        );
        assert!(raw.join(name).exists(), "{name} was removed");
    }
    assert!(
        records
            .iter()
            .all(|r| r["target"] != raw.join("archive.log.gz").to_str().unwrap()),
        "compressed files are not candidates"
    );
    assert_eq!(
        fs::read(raw.join("taken.log.zst")).unwrap(),
        b"someone else's"
    );
    assert_eq!(
        names(&raw),
        [
            "archive.log.gz",
            "busy.log",
            "fresh.log",
            "linked.log",
            "old.log.zst",
            "taken.log",
            "taken.log.zst"
        ]
    );
}

/// Gravix's warehouse: parquet compressed to .parquet.zst was unreadable to
/// the query engine, and larger.
#[test]
fn columnar_media_and_compressed_files_are_never_candidates() {
    let tmp = tempdir().unwrap();
    let dir = tmp.path().join("warehouse");
    let never = [
        "part-0.parquet",
        "PART-1.PARQUET",
        "t.orc",
        "t.arrow",
        "t.feather",
        "t.avro",
        "p.jpg",
        "p.jpeg",
        "p.png",
        "p.gif",
        "p.webp",
        "a.tgz",
        "a.zip",
        "a.bz2",
        "a.xz",
        "a.7z",
        "a.zst",
        "a.gz",
    ];
    for name in never {
        old_file(&dir.join(name), &vec![b'x'; 4096], 0o644, 10);
    }
    old_file(&dir.join("rollup.jsonl"), &vec![b'x'; 4096], 0o644, 10);
    for dry in [true, false] {
        let dry_run: &[&str] = if dry { &["--dry-run"] } else { &[] };
        let command = ops("ops-compact")
            .arg("--files")
            .arg(&dir)
            .args(["--older-than", "1d"])
            .args(dry_run);
        let records = command.run().success().records();
        let targets: Vec<&str> = records
            .iter()
            .map(|r| r["target"].as_str().unwrap())
            .collect();
        assert_eq!(
            targets,
            [dir.join("rollup.jsonl").to_str().unwrap()],
            "dry run {dry}"
        );
    }
    let mut expected: Vec<String> = never.iter().map(|n| (*n).to_owned()).collect();
    expected.push("rollup.jsonl.zst".into());
    expected.sort();
    assert_eq!(names(&dir), expected);
}

#[test]
fn a_glob_picks_its_files_only() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("raw");
    old_file(&raw.join("a.jsonl"), b"a\n", 0o644, 10);
    old_file(&raw.join("b.jsonl"), b"b\n", 0o644, 10);
    old_file(&raw.join("keep.txt"), b"c\n", 0o644, 10);
    let glob = format!("{}/*.jsonl", raw.display());
    let records = ops("ops-compact")
        .args(["--files", &glob, "--older-than", "7d"])
        .run()
        .success()
        .records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(names(&raw), ["a.jsonl.zst", "b.jsonl.zst", "keep.txt"]);
    let human = ops("ops-compact")
        .args(["--files", &glob, "--human"])
        .run()
        .success();
    assert_eq!(human.stdout, "", "nothing left to do: {}", human.stdout);
}

#[test]
#[cfg(feature = "failpoints")] // enabled by `cargo test --workspace`
fn a_crash_leaves_the_original_and_the_next_run_finishes_the_job() {
    for step in ["temp-created", "written"] {
        let tmp = tempdir().unwrap();
        let raw = tmp.path().join("raw");
        let bytes = "line\n".repeat(5000).into_bytes();
        old_file(&raw.join("a.log"), &bytes, 0o644, 10);
        let status = Command::new(ops_tests::bin_dir().join("ops-compact"))
            .arg("--files")
            .arg(&raw)
            .env("OPS_FAILPOINT", step)
            .output()
            .unwrap()
            .status;
        assert!(!status.success(), "{step}: the failpoint did not stop it");
        assert_eq!(fs::read(raw.join("a.log")).unwrap(), bytes, "{step}");
        assert_eq!(
            names(&raw),
            ["a.log", "a.log.zst.ops-tmp"],
            "{step}: only a temporary file is left"
        );
        let records = ops("ops-compact")
            .arg("--files")
            .arg(&raw)
            .run()
            .success()
            .records();
        assert_eq!(records[0]["action"], "compressed", "{step}: {records:?}");
        assert_eq!(names(&raw), ["a.log.zst"], "{step}");
        assert_eq!(zstd_dc(&raw.join("a.log.zst")), bytes, "{step}");
    }
}

#[test]
fn a_file_another_run_is_compressing_is_left_to_it() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("raw");
    old_file(&raw.join("a.log"), b"a\n", 0o644, 10);
    // The other run holds the lock on its temporary file.
    let temp = fs::File::create(raw.join("a.log.zst.ops-tmp")).unwrap();
    temp.lock().unwrap();
    let records = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .run()
        .success()
        .records();
    assert_eq!(records[0]["action"], "skipped", "{records:?}");
    let reason = records[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("another ops-compact is compressing it"),
        "{reason}"
    );
    assert_eq!(names(&raw), ["a.log", "a.log.zst.ops-tmp"]);
}

/// Every path under `root` with its bytes: what must not change.
fn tree_state(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut state: Vec<_> = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap();
            let bytes = if entry.file_type().is_file() {
                fs::read(entry.path()).unwrap()
            } else {
                Vec::new()
            };
            (entry.path().display().to_string(), bytes)
        })
        .collect();
    state.sort();
    state
}

#[test]
fn a_snapshot_repository_and_anything_inside_it_is_refused() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    old_file(
        &data.join("a.log"),
        &"line\n".repeat(1000).into_bytes(),
        0o644,
        10,
    );
    let place = tmp.path().join("place");
    let repo = place.join("repo");
    fs::create_dir(&place).unwrap();
    ops("ops-snapshot")
        .arg("create")
        .arg(&data)
        .arg("--repo")
        .arg(&repo)
        .run()
        .success();
    // A repository whose config is gone is one still (a crash during its
    // first create, or an earlier mistake).
    let broken = place.join("broken");
    Command::new("cp")
        .arg("-a")
        .arg(&repo)
        .arg(&broken)
        .status()
        .unwrap();
    fs::remove_file(broken.join("config")).unwrap();
    let pack_dir = fs::read_dir(repo.join("packs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = tree_state(&place);
    let args = [
        place.clone(),
        repo.clone(),
        repo.join("config"),
        repo.join("packs"),
        pack_dir,
        broken.join("packs"),
        repo.join("*"),
        repo.join("packs/*/*"),
        place.join("*/config"),
    ];
    for arg in args {
        let out = ops("ops-compact")
            .arg("--files")
            .arg(&arg)
            .args(["--older-than", "0s"])
            .run();
        assert_eq!(out.code, 2, "--files {}: {out:?}", arg.display());
        assert!(
            out.stderr.contains("is an ops-snapshot repository"),
            "--files {}: {}",
            arg.display(),
            out.stderr
        );
        assert_eq!(tree_state(&place), before, "--files {}", arg.display());
    }
}

#[test]
#[cfg(feature = "failpoints")] // enabled by `cargo test --workspace`
fn a_crash_between_rename_and_unlink_is_finished_by_the_next_run() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let bytes = "line\n".repeat(5000).into_bytes();
    old_file(&raw.join("a.log"), &bytes, 0o640, 10);
    let status = Command::new(ops_tests::bin_dir().join("ops-compact"))
        .arg("--files")
        .arg(&raw)
        .env("OPS_FAILPOINT", "renamed")
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "the failpoint did not stop it");
    assert_eq!(names(&raw), ["a.log", "a.log.zst"]);
    let plan = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .arg("--dry-run")
        .run()
        .success()
        .records();
    assert_eq!(plan[0]["action"], "would-compress", "{plan:?}");
    let records = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .run()
        .success()
        .records();
    assert_eq!(records[0]["action"], "compressed", "{records:?}");
    assert_eq!(names(&raw), ["a.log.zst"]);
    assert_eq!(zstd_dc(&raw.join("a.log.zst")), bytes);
}

#[test]
fn a_zst_with_the_times_of_its_original_but_other_bytes_is_left_alone() {
    let tmp = tempdir().unwrap();
    let raw = tmp.path().join("raw");
    old_file(&raw.join("a.log"), b"the original\n", 0o644, 10);
    let other = tmp.path().join("other");
    old_file(&other, b"something else\n", 0o644, 10);
    let packed = Command::new("zstd").arg("-q").arg(&other).status().unwrap();
    assert!(packed.success());
    fs::rename(tmp.path().join("other.zst"), raw.join("a.log.zst")).unwrap();
    let meta = fs::metadata(raw.join("a.log")).unwrap();
    let zst = fs::File::options()
        .write(true)
        .open(raw.join("a.log.zst"))
        .unwrap();
    zst.set_times(
        FileTimes::new()
            .set_modified(meta.modified().unwrap())
            .set_accessed(meta.accessed().unwrap()),
    )
    .unwrap();
    fs::set_permissions(raw.join("a.log.zst"), fs::Permissions::from_mode(0o644)).unwrap();
    let records = ops("ops-compact")
        .arg("--files")
        .arg(&raw)
        .run()
        .success()
        .records();
    assert_eq!(records[0]["action"], "skipped", "{records:?}");
    assert!(
        records[0]["reason"]
            .as_str()
            .unwrap()
            .contains("a.log.zst exists"),
        "{records:?}"
    );
    assert_eq!(fs::read(raw.join("a.log")).unwrap(), b"the original\n");
    assert_eq!(zstd_dc(&raw.join("a.log.zst")), b"something else\n");
}

/// kill -9 at 20 points of a run: every file is always there, as itself or
/// as a FILE.zst holding its bytes, and the next run finishes every one.
#[test]
fn kill_9_anywhere_loses_nothing_and_the_next_run_finishes() {
    let contents: Vec<Vec<u8>> = (0..6)
        .map(|n| {
            let mut bytes = format!("file {n}\n").repeat(20_000).into_bytes();
            bytes.extend(pseudo_random(100_000, n));
            bytes
        })
        .collect();
    let mut killed = 0;
    for round in 0..20u64 {
        let tmp = tempdir().unwrap();
        let raw = tmp.path().join("raw");
        for (n, bytes) in contents.iter().enumerate() {
            old_file(&raw.join(format!("{n}.log")), bytes, 0o640, 10);
        }
        let mut child = Command::new(ops_tests::bin_dir().join("ops-compact"))
            .arg("--files")
            .arg(&raw)
            .args(["--jobs", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(round * round * 150));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        for (n, bytes) in contents.iter().enumerate() {
            let (plain, packed) = (
                raw.join(format!("{n}.log")),
                raw.join(format!("{n}.log.zst")),
            );
            let kept = fs::read(&plain).is_ok_and(|b| &b == bytes)
                || (packed.exists() && &zstd_dc(&packed) == bytes);
            assert!(kept, "round {round}: {n}.log lost: {:?}", names(&raw));
        }
        ops("ops-compact").arg("--files").arg(&raw).run().success();
        let want: Vec<String> = (0..6).map(|n| format!("{n}.log.zst")).collect();
        assert_eq!(names(&raw), want, "round {round}");
        for (n, bytes) in contents.iter().enumerate() {
            assert_eq!(
                &zstd_dc(&raw.join(format!("{n}.log.zst"))),
                bytes,
                "round {round}"
            );
        }
    }
    assert!(
        killed >= 10,
        "only {killed} of 20 runs were killed while working"
    );
}

#[test]
fn a_sled_database_and_anything_inside_it_is_refused() {
    let tmp = tempdir().unwrap();
    let place = tmp.path().join("place");
    let db = place.join("app/db");
    fs::create_dir_all(&db).unwrap();
    ops_tests::sled_db::churned_db(&db);
    let before = tree_state(&place);
    for arg in [place.clone(), db.clone(), db.join("db"), db.join("*")] {
        let out = ops("ops-compact")
            .arg("--files")
            .arg(&arg)
            .args(["--older-than", "0s"])
            .run();
        assert_eq!(out.code, 2, "--files {}: {out:?}", arg.display());
        assert!(
            out.stderr.contains("is a sled database"),
            "--files {}: {}",
            arg.display(),
            out.stderr
        );
        assert_eq!(tree_state(&place), before, "--files {}", arg.display());
    }
}
