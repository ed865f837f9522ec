//! The artifact writer on its own: order, raw frames, plain output.

use super::*;
use std::fs::{self, File};
use std::path::Path;

fn open_artifact(dir: &Path) -> Box<dyn Upload> {
    ops_storage::create(&dir.join("a.tar.zst"), ops_storage::Mode::New).unwrap()
}

fn source(dir: &Path, name: &str, bytes: &[u8]) -> File {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    File::open(path).unwrap()
}

fn text(len: usize, seed: usize) -> Vec<u8> {
    let words = ["backup", "verify", "restore", "prune", "ops", "zstd"];
    let mut out = Vec::with_capacity(len + 16);
    let mut i = seed;
    while out.len() < len {
        i = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        out.extend_from_slice(words[(i >> 33) % words.len()].as_bytes());
        out.push(if i.is_multiple_of(7) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Writes `parts` (written, or read from a file when `true`), returns
/// what it wrote and what the writer said of it.
fn write_parts(
    dir: &Path,
    mut out: ArtifactWriter,
    parts: &[(bool, Vec<u8>)],
) -> (Vec<u8>, Vec<u8>, String, u64) {
    let mut expected = Vec::new();
    for (i, (read, bytes)) in parts.iter().enumerate() {
        if *read {
            let mut file = source(dir, &format!("src{i}"), bytes);
            loop {
                let got = out.read_from(&mut file, CHUNK).unwrap();
                if got.is_empty() {
                    break;
                }
                expected.extend_from_slice(got);
            }
        } else {
            out.write_all(bytes).unwrap();
            expected.extend_from_slice(bytes);
        }
    }
    let (file, sha256, bytes) = out.finish().unwrap();
    file.commit().unwrap();
    let artifact = fs::read(dir.join("a.tar.zst")).unwrap();
    (expected, artifact, sha256, bytes)
}

fn mixed() -> Vec<(bool, Vec<u8>)> {
    let mut parts = vec![(false, b"header".repeat(100))];
    for i in 0..4 {
        parts.push((true, text(9 << 20, i)));
        parts.push((true, ops_tests::pseudo_random(3 << 20, i as u64 + 1)));
        parts.push((false, vec![0; 512]));
        parts.push((true, text(1000 + i, i)));
    }
    parts.push((true, text(JOB, 9)));
    parts
}

/// The content bytes of the stream's raw frames (ours: single segment,
/// 8-byte size, no checksum), walking every frame's blocks.
fn raw_frame_bytes(mut stream: &[u8]) -> u64 {
    let mut stored = 0;
    while !stream.is_empty() {
        assert_eq!(stream[..4], 0xFD2F_B528u32.to_le_bytes());
        let descriptor = stream[4];
        let size_field = [0, 2, 4, 8][usize::from(descriptor >> 6)];
        let single = descriptor & 0x20 != 0;
        let header = 5
            + usize::from(!single)
            + [0, 1, 2, 4][usize::from(descriptor & 3)]
            + if single && size_field == 0 {
                1
            } else {
                size_field
            };
        if descriptor == 0b1110_0000 {
            stored += u64::from_le_bytes(stream[5..13].try_into().unwrap());
        }
        stream = &stream[header..];
        loop {
            let block = u32::from_le_bytes([stream[0], stream[1], stream[2], 0]);
            let size = match (block >> 1) & 3 {
                1 => 1,
                _ => (block >> 3) as usize,
            };
            stream = &stream[3 + size..];
            if block & 1 == 1 {
                break;
            }
        }
        if descriptor & 4 != 0 {
            stream = &stream[4..];
        }
    }
    stored
}

#[test]
fn jobs_come_back_in_order_whatever_the_number_of_workers() {
    for threads in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let out = ArtifactWriter::compressed(open_artifact(dir.path()), 3, threads, None).unwrap();
        let (expected, artifact, sha256, bytes) = write_parts(dir.path(), out, &mixed());
        assert!(
            expected.len() > 10 * JOB,
            "more jobs than may exist at once"
        );
        assert_eq!(zstd::decode_all(&artifact[..]).unwrap(), expected);
        assert_eq!(bytes, artifact.len() as u64);
        assert_eq!(sha256, hex(Sha256::new_with_prefix(&artifact)));
        // Of the 12 MiB of noise, all but pieces cut short at job ends
        // is stored in raw frames; the text is compressed.
        let stored = raw_frame_bytes(&artifact);
        assert!(stored > 10 << 20 && stored <= 12 << 20, "{stored}");
        assert!(artifact.len() < expected.len() / 2, "{}", artifact.len());
    }
}

#[test]
fn an_empty_stream_is_one_empty_zstd_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = ArtifactWriter::compressed(open_artifact(dir.path()), 3, 2, None).unwrap();
    let (_, artifact, _, bytes) = write_parts(dir.path(), out, &[]);
    assert!(bytes > 0);
    assert_eq!(zstd::decode_all(&artifact[..]).unwrap(), b"");
}

#[test]
fn a_plain_artifact_holds_its_input_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let out = ArtifactWriter::plain(open_artifact(dir.path()), None).unwrap();
    let (expected, artifact, sha256, _) = write_parts(dir.path(), out, &mixed());
    assert!(expected == artifact, "plain output differs from its input");
    assert_eq!(sha256, hex(Sha256::new_with_prefix(&artifact)));
    let dir = tempfile::tempdir().unwrap();
    let out = ArtifactWriter::plain(open_artifact(dir.path()), None).unwrap();
    let (_, empty, _, _) = write_parts(dir.path(), out, &[]);
    assert!(empty.is_empty());
}
