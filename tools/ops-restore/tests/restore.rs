//! ops-restore, as a user runs it, and against archives crafted to escape.
#![allow(clippy::unwrap_used, clippy::panic)]

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
    assert!(help.stdout.contains("--to") && help.stdout.contains("--force"));
    ops("ops-restore").arg("x.tar.zst").run().fails_with(2);
    let out = ops("ops-restore")
        .args(["--to", "x"])
        .stdin("")
        .run()
        .fails_with(2);
    assert!(
        out.stderr.contains("no backup or snapshot record on stdin"),
        "{}",
        out.stderr
    );
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
    assert!(out.stderr.contains("2 backup records"), "{}", out.stderr);
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
    assert!(
        out.stderr.contains("not empty") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
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
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
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
    assert!(
        out.stderr.contains("not the one the record describes"),
        "{}",
        out.stderr
    );
    assert!(!target.exists());
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
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
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
        header.set_cksum();
        tar.append(&header, *content).unwrap();
        let mut hashing = HashingWriter::new(std::io::sink());
        hashing.write_all(content).unwrap();
        raw_bytes += content.len() as u64;
        manifest_entries.push(Entry {
            path: PathBuf::from(OsStr::from_bytes(name)),
            kind: *kind,
            size: content.len() as u64,
            mode: 0o644,
            mtime: 0,
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
    };
    let mut writer =
        ManifestWriter::create(&dir.join(format!("{id}.manifest.jsonl")), &header).unwrap();
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
    writer.finish(&summary).unwrap().commit().unwrap();
    fs::write(
        ops_backup::catalog::checksum_path(&artifact),
        format!("{}  {}\n", summary.sha256, header.artifact),
    )
    .unwrap();
    artifact
}

fn assert_refused(entries: &[Crafted], outside: &Path, tmp: &Path) {
    let artifact = craft(&tmp.join("backups"), entries);
    ops("ops-verify").arg(&artifact).run().success();
    let target = tmp.join("work/target");
    fs::create_dir_all(tmp.join("work")).unwrap();
    let out = ops("ops-restore")
        .arg(&artifact)
        .arg("--to")
        .arg(&target)
        .run()
        .fails_with(1);
    assert!(
        out.stderr.contains("refusing to write outside the target")
            || out.stderr.contains("File exists"),
        "{}",
        out.stderr
    );
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
