//! ops-restore, as a user runs it, and against archives crafted to escape.
#![allow(clippy::unwrap_used, clippy::panic)]
// A test that tells one story end to end reads better whole.
#![allow(clippy::too_many_lines)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ops_backup::hashing::HashingWriter;
use ops_backup::manifest::{Entry, Header, Kind, ManifestWriter, Summary};
use ops_shared::Source;
use ops_tests::{assert_same_tree, backed_up_sample, names, ops};

use tempfile::tempdir;

#[test]
fn help_and_bad_arguments() {
    let help = ops("ops-restore").arg("--help").run().success();
    help.stdout_contains("--to").stdout_contains("--force");
    ops("ops-restore").arg("x.tar.zst").run().fails_with(2);
    let out = ops("ops-restore")
        .args(["--to", "x"])
        .stdin("")
        .run()
        .fails_with(2);
    out.stderr_contains("no backup or snapshot record on stdin");
}

#[test]
fn a_restore_reproduces_contents_modes_times_and_links() {
    let (tmp, data, record) = backed_up_sample();
    let target = tmp.path().join("restored");
    let out = ops("ops-restore")
        .arg(record["path"].as_str().unwrap())
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    let restored = out.record();
    assert_eq!(restored["id"], record["id"]);
    assert_eq!(restored["restore"]["ok"], true);
    assert_same_tree(&data, &target);
    assert!(target.join(OsStr::from_bytes(b"caf\xe9.txt")).exists());
}

#[test]
fn a_record_on_stdin_works_and_others_pass_through() {
    let (tmp, data, record) = backed_up_sample();
    let target = tmp.path().join("restored");
    let input = format!("{{\"type\":\"note\",\"v\":1}}\n{record}\n");
    let out = ops("ops-restore")
        .arg("--to")
        .arg(&target)
        .stdin(input)
        .run()
        .success();
    assert_eq!(out.records().len(), 2);
    assert_same_tree(&data, &target);
    let two = format!("{record}\n{record}\n");
    let out = ops("ops-restore")
        .arg("--to")
        .arg(tmp.path().join("other"))
        .stdin(two)
        .run()
        .fails_with(2);
    out.stderr_contains("2 backup records");
}

#[test]
fn a_non_empty_target_is_refused_unless_forced_and_then_replaced() {
    let (tmp, data, record) = backed_up_sample();
    let target = tmp.path().join("restored");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("stale.txt"), "old").unwrap();
    let artifact = record["path"].as_str().unwrap();
    let out = ops("ops-restore")
        .arg(artifact)
        .arg("--to")
        .arg(&target)
        .run()
        .fails_with(1);
    out.stderr_contains("not empty").stderr_contains("--force");
    assert_eq!(names(&target), ["stale.txt"]);
    ops("ops-restore")
        .arg(artifact)
        .arg("--to")
        .arg(&target)
        .arg("--force")
        .run()
        .success();
    assert_same_tree(&data, &target);
    let empty = tmp.path().join("empty-target");
    fs::create_dir(&empty).unwrap();
    ops("ops-restore")
        .arg(artifact)
        .arg("--to")
        .arg(&empty)
        .run()
        .success();
}

#[test]
fn a_corrupt_backup_restores_nothing() {
    let (tmp, _data, record) = backed_up_sample();
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    let mut bytes = fs::read(&artifact).unwrap();
    let at = bytes.len() * 3 / 4;
    bytes[at] ^= 0x40;
    fs::write(&artifact, bytes).unwrap();
    let target = tmp.path().join("restored");
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&target)
        .run()
        .fails_with(1);
    out.stderr_contains("nothing was written");
    assert!(!target.exists());
    assert!(
        !names(tmp.path()).iter().any(|n| n.ends_with(".ops-tmp")),
        "{:?}",
        names(tmp.path())
    );
}

#[test]
fn a_damaged_artifact_restores_exactly_or_not_at_all() {
    let (tmp, data, record) = backed_up_sample();
    let artifact = PathBuf::from(record["path"].as_str().unwrap());
    let good = fs::read(&artifact).unwrap();
    let mut offsets: Vec<usize> = (0..8).chain(good.len() - 8..good.len()).collect();
    offsets.extend((1..40).map(|i| good.len() * i / 40));
    let mut refused = 0;
    for at in offsets {
        let mut bytes = good.clone();
        bytes[at] ^= 0x10;
        fs::write(&artifact, &bytes).unwrap();
        let target = tmp.path().join(format!("restored-{at}"));
        let out = ops("ops-restore")
            .arg(&artifact)
            .arg("--to")
            .arg(&target)
            .run();
        if out.code == 0 {
            // zstd can ignore a few bits (a larger window, say); what is
            // restored must still be exactly what was backed up.
            assert_same_tree(&data, &target);
        } else {
            assert_eq!(out.code, 1, "byte {at}: {out:?}");
            assert!(!target.exists(), "byte {at}");
            refused += 1;
        }
    }
    assert!(refused >= 40, "only {refused} damaged copies were refused");
}

#[test]
fn a_record_of_another_artifact_is_refused() {
    let (tmp, _data, mut record) = backed_up_sample();
    record["sha256"] = "0".repeat(64).into();
    let target = tmp.path().join("restored");
    let out = ops("ops-restore")
        .arg("--to")
        .arg(&target)
        .stdin(format!("{record}\n"))
        .run()
        .fails_with(1);
    out.stderr_contains("not the one the record describes");
    assert!(!target.exists());
}

#[test]
fn a_record_whose_id_or_path_is_not_of_our_shape_is_refused_before_anything_is_read() {
    let (tmp, _data, record) = backed_up_sample();
    let target = tmp.path().join("restored");
    let path = record["path"].as_str().unwrap().to_owned();
    let mut climbing = record.clone();
    climbing["id"] = format!("../other/{}", record["id"].as_str().unwrap()).into();
    let mut elsewhere = record.clone();
    elsewhere["path"] = path.replace(".tar.zst", ".manifest.jsonl").into();
    for forged in [climbing, elsewhere] {
        let out = ops("ops-restore")
            .arg("--to")
            .arg(&target)
            .stdin(format!("{forged}\n"))
            .run()
            .fails_with(2);
        out.stderr_contains("input line 1");
        assert!(!target.exists());
    }
}

/// One entry of a crafted archive: raw name, kind, link target, content.
struct Crafted<'a>(&'a [u8], Kind, &'a [u8], &'a [u8]);

/// Writes an archive and a manifest that agree with it, as an attacker who
/// controls both would.
fn craft(dir: &Path, entries: &[Crafted]) -> PathBuf {
    let mut tar = tar::Builder::new(Vec::new());
    let mut manifest_entries = Vec::new();
    let mut raw_bytes = 0;
    for Crafted(name, kind, target, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(content.len() as u64);
        header.set_entry_type(match kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
        });
        if name.len() > 100 {
            let name = Path::new(OsStr::from_bytes(name));
            tar.append_data(&mut header, name, *content).unwrap();
        } else {
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_cksum();
            tar.append(&header, *content).unwrap();
        }
        let mut hashing = HashingWriter::new(std::io::sink());
        hashing.write_all(content).unwrap();
        raw_bytes += content.len() as u64;
        manifest_entries.push(Entry {
            path: PathBuf::from(OsStr::from_bytes(name)),
            kind: *kind,
            size: content.len() as u64,
            mode: 0o644,
            mtime: 0,
            uid: None,
            gid: None,
            sha256: (*kind == Kind::File).then(|| hashing.finish().1),
            target: (!target.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(target))),
            changed: false,
        });
    }
    let compressed = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
    let mut hashing = HashingWriter::new(Vec::new());
    hashing.write_all(&compressed).unwrap();
    let (bytes, sha256, len) = hashing.finish();
    let id = "evil_20260101_000000";
    fs::create_dir_all(dir).unwrap();
    let artifact = dir.join(format!("{id}.tar.zst"));
    fs::write(&artifact, bytes).unwrap();
    let header = Header {
        v: 1,
        id: id.into(),
        name: "evil".into(),
        time: "2026-01-01T00:00:00Z".parse().unwrap(),
        artifact: format!("{id}.tar.zst"),
        format: "tar.zst".into(),
        mode: "full".into(),
        parent: None,
        source: Source {
            kind: "dir".into(),
            location: "/evil".into(),
        },
        tool: "crafted".into(),
        zstd_level: 3,
        database: None,
        sled: None,
        root: None,
        encryption: None,
    };
    let mut writer =
        ManifestWriter::create(&dir.join(format!("{id}.manifest.jsonl")), &header, None).unwrap();
    for entry in &manifest_entries {
        writer.entry(entry).unwrap();
    }
    let summary = Summary {
        entries: entries.len() as u64,
        raw_bytes,
        bytes: len,
        sha256,
        changed: 0,
        skipped: 0,
        content_checksum: None,
    };
    for file in writer.finish(&summary).unwrap() {
        file.commit().unwrap();
    }
    fs::write(
        ops_backup::catalog::checksum_path(&artifact),
        format!("{}  {}\n", summary.sha256, header.artifact),
    )
    .unwrap();
    artifact
}

fn assert_refused(entries: &[Crafted], outside: &Path, tmp: &Path) {
    let artifact = craft(&tmp.join("backups"), entries);
    let verified = ops("ops-verify").arg(&artifact).run().fails_with(1);
    verified.stderr_contains("ops-restore refuses");
    assert_eq!(verified.record()["verify"]["ok"], false);
    let quick = ops("ops-verify")
        .args(["--level", "quick"])
        .arg(&artifact)
        .run()
        .fails_with(1);
    quick.stderr_contains("ops-restore refuses");
    let target = tmp.join("work/target");
    fs::create_dir_all(tmp.join("work")).unwrap();
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&target)
        .run()
        .fails_with(2);
    out.stderr_contains("refusing to restore")
        .stderr_contains("nothing was written");
    assert!(!target.exists(), "target created");
    assert!(
        names(&tmp.join("work")).is_empty(),
        "left behind: {:?}",
        names(&tmp.join("work"))
    );
    assert!(
        names(outside).is_empty(),
        "wrote outside: {:?}",
        names(outside)
    );
    fs::remove_dir_all(tmp.join("backups")).unwrap();
}

#[test]
fn verified_means_restorable_for_entries_restore_refuses() {
    let tmp = tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let long = vec![b'x'; 256];
    let cases: Vec<Vec<Crafted>> = vec![
        vec![
            Crafted(b"twice", Kind::File, b"", b"first"),
            Crafted(b"twice", Kind::File, b"", b"second"),
        ],
        vec![
            Crafted(b"d", Kind::Dir, b"", b""),
            Crafted(b"./d", Kind::Dir, b"", b""),
        ],
        vec![Crafted(&long, Kind::File, b"", b"long")],
        vec![
            Crafted(b"f", Kind::File, b"", b"file"),
            Crafted(b"f/under-a-file", Kind::File, b"", b"x"),
        ],
        vec![
            Crafted(b"d/implied", Kind::File, b"", b"x"),
            Crafted(b"d", Kind::File, b"", b"over a directory"),
        ],
        vec![
            Crafted(b"d", Kind::Dir, b"", b""),
            Crafted(b"hard", Kind::Hardlink, b"d", b""),
        ],
        vec![Crafted(b"hard", Kind::Hardlink, b"not-there", b"")],
        vec![
            Crafted(b"s", Kind::Symlink, b"f", b""),
            Crafted(b"hard", Kind::Hardlink, b"s", b""),
        ],
        vec![Crafted(b"no-target", Kind::Symlink, b"", b"")],
    ];
    for case in &cases {
        assert_refused(case, &outside, tmp.path());
    }
}

#[test]
fn crafted_archives_cannot_write_outside_the_target() {
    let tmp = tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let outside_abs = outside.join("abs.txt");
    let cases: Vec<Vec<Crafted>> = vec![
        vec![Crafted(
            b"../../outside/dotdot.txt",
            Kind::File,
            b"",
            b"pwned",
        )],
        vec![Crafted(
            outside_abs.as_os_str().as_bytes(),
            Kind::File,
            b"",
            b"pwned",
        )],
        vec![
            Crafted(
                b"escape",
                Kind::Symlink,
                outside.as_os_str().as_bytes(),
                b"",
            ),
            Crafted(b"escape/through-link.txt", Kind::File, b"", b"pwned"),
        ],
        vec![
            Crafted(b"dir", Kind::Dir, b"", b""),
            Crafted(b"dir", Kind::Symlink, outside.as_os_str().as_bytes(), b""),
            Crafted(b"dir/x.txt", Kind::File, b"", b"pwned"),
        ],
        vec![Crafted(
            b"hard",
            Kind::Hardlink,
            b"../../outside/victim",
            b"",
        )],
    ];
    for case in &cases {
        assert_refused(case, &outside, tmp.path());
    }
}

/// Backs `data` up into `tmp/backups`; returns the artifact.
fn back_up(data: &Path, tmp: &Path) -> PathBuf {
    let record = ops("ops-backup")
        .arg("create")
        .arg(data)
        .arg("--to")
        .arg(tmp.join("backups"))
        .run()
        .success()
        .record();
    PathBuf::from(record["path"].as_str().unwrap())
}

/// A tree a local user made: a setuid copy of a program, a setgid
/// directory and a symlink, all owned by uid 1234 and gid 2345.
fn users_setuid_tree(data: &Path) {
    use std::os::unix::fs::{lchown, PermissionsExt};
    fs::create_dir_all(data.join("shared")).unwrap();
    fs::write(data.join("id"), "#!/bin/sh\nid\n").unwrap();
    fs::write(data.join("shared/plain"), "plain\n").unwrap();
    std::os::unix::fs::symlink("id", data.join("link")).unwrap();
    for path in ["id", "shared", "shared/plain", "link"] {
        lchown(data.join(path), Some(1234), Some(2345)).unwrap();
    }
    fs::set_permissions(data.join("id"), fs::Permissions::from_mode(0o6755)).unwrap();
    fs::set_permissions(data.join("shared"), fs::Permissions::from_mode(0o2775)).unwrap();
}

fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

#[test]
fn a_root_restore_mints_no_setuid_root_binary_and_keeps_owners() {
    if !ops_tests::is_root() {
        eprintln!("skipped: needs root to make files of another user");
        return;
    }
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    users_setuid_tree(&data);
    std::os::unix::fs::chown(&data, Some(1234), Some(2345)).unwrap();
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let artifact = back_up(&data, tmp.path());
    let manifest = fs::read_to_string(ops_tests::only_file(
        &tmp.path().join("backups"),
        ".manifest.jsonl",
    ))
    .unwrap();
    assert!(
        manifest.contains(r#""uid":1234,"gid":2345"#),
        "owners not in the manifest: {manifest}"
    );
    ops("ops-verify").arg(&artifact).run().success();
    let target = tmp.path().join("restored");
    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    assert_eq!(owner_and_mode(&target), (1234, 2345, 0o750), "the top");
    assert_eq!(owner_and_mode(&target.join("id")), (1234, 2345, 0o6755));
    assert_eq!(owner_and_mode(&target.join("shared")), (1234, 2345, 0o2775));
    assert_eq!(owner_and_mode(&target.join("shared/plain")).0, 1234);
    assert_eq!(owner_and_mode(&target.join("link")).0, 1234);
}

#[test]
fn a_non_root_restore_strips_setuid_and_setgid_bits() {
    use std::os::unix::fs::PermissionsExt;
    if !ops_tests::is_root() {
        eprintln!("skipped: needs root to make files of another user");
        return;
    }
    let tmp = tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    users_setuid_tree(&data);
    let artifact = back_up(&data, tmp.path());
    let backups = tmp.path().join("backups");
    fs::set_permissions(&backups, fs::Permissions::from_mode(0o755)).unwrap();
    for file in names(&backups) {
        let path = tmp.path().join("backups").join(file);
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(65534), Some(65534)).unwrap();
    let target = work.join("restored");
    let mut run = ops("ops-restore");
    let program = run.command.get_program().to_owned();
    run.command = std::process::Command::new("setpriv");
    run.command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program)
        .env("OPS_CACHE_DIR", work.join("cache"));
    let out = run.arg(&artifact).arg("--to").arg(&target).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(owner_and_mode(&target.join("id")), (65534, 65534, 0o755));
    assert_eq!(
        owner_and_mode(&target.join("shared")),
        (65534, 65534, 0o775)
    );
}

/// A 64 MiB file with 8 KiB of data in its middle and a hole at its end.
fn sparse_file(path: &Path) -> bool {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let file = fs::File::create(path).unwrap();
    file.set_len(64 << 20).unwrap();
    file.write_all_at(&[7u8; 8192], 32 << 20).unwrap();
    let sparse = file.metadata().unwrap().blocks() * 512 < 1 << 20;
    if !sparse {
        eprintln!("skipped: {} cannot hold holes", path.display());
    }
    sparse
}

/// Bytes allocated on disk for `path`.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_sparse_file_comes_back_with_its_holes() {
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    if !sparse_file(&data.join("disk.img")) {
        return;
    }
    fs::write(data.join("zeros-then-data"), [&[0u8; 3][..], b"x"].concat()).unwrap();
    let artifact = back_up(&data, tmp.path());
    let target = tmp.path().join("restored");
    ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&target)
        .run()
        .success();
    assert_same_tree(&data, &target);
    let image = target.join("disk.img");
    assert_eq!(fs::metadata(&image).unwrap().len(), 64 << 20);
    assert!(
        allocated(&image) < 1 << 20,
        "holes filled: {} bytes allocated",
        allocated(&image)
    );
}

#[test]
fn ctrl_c_during_a_restore_leaves_neither_the_target_nor_its_staging_directory() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let tmp = tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    for n in 0..4 {
        let mut file = fs::File::create(data.join(format!("big{n}"))).unwrap();
        let mut random = fs::File::open("/dev/urandom").unwrap();
        std::io::copy(&mut std::io::Read::take(&mut random, 48 << 20), &mut file).unwrap();
    }
    let artifact = back_up(&data, tmp.path());
    let restores = tmp.path().join("restores");
    fs::create_dir(&restores).unwrap();
    let target = restores.join("restored");
    let child = Command::new(ops_tests::bin_dir().join("ops-restore"))
        .arg(&artifact)
        .arg("--to")
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while names(&restores).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no staging directory"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let (status, stderr) = ops_tests::interrupt(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(names(&restores).is_empty(), "{:?}", names(&restores));
}
