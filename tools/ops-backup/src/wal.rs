//! The WAL archive, and its one owner: what PostgreSQL's `archive_command`
//! hands over (`wal-push`) and what its `restore_command` asks back for
//! (`wal-get`).
//!
//! Each file is stored once under its own name, zstd-compressed (with
//! zstd's content checksum) and followed by a skippable frame holding the
//! SHA-256 of its content, so `zstd -dc` still reads it and a file changed
//! in the archive is found on the way back. Segments and their `.partial`
//! and `.backup` files live in `PLACE/wal/<timeline and log, 16 hex>/`, so
//! no directory holds more than 256 segments of 16 MiB and `wal-get` needs
//! one request and no listing; timeline history files are in `PLACE/wal/`.
//! Only names of PostgreSQL's own shapes are ever made into paths, and a
//! name once archived is never overwritten: the same content pushed again
//! succeeds, other content is refused.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ops_storage::Mode;
use sha2::{Digest, Sha256};

/// The directory of the archive inside a backup place.
pub const WAL_DIR: &str = "wal";
const SUFFIX: &str = ".zst";
/// zstd's skippable frame magic we use, then the frame's length.
const TRAILER_MAGIC: u32 = 0x184D_2A5E;
const TRAILER_LEN: usize = 8 + 32;
/// A temporary file older than this was left by a push that was killed.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(60);

/// The kinds of file PostgreSQL archives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalKind {
    /// `000000010000000000000003`
    Segment,
    /// `000000010000000000000003.partial`, the last segment of a timeline
    /// left at a promotion.
    Partial,
    /// `000000010000000000000003.00000028.backup`, a base backup's label.
    BackupHistory,
    /// `00000002.history`
    History,
}

/// A name PostgreSQL gave a file of the archive, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalName {
    pub name: String,
    pub kind: WalKind,
}

fn is_upper_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl WalName {
    /// `name` if it has one of PostgreSQL's shapes.
    pub fn parse(name: &str) -> Option<WalName> {
        let kind = match name.split('.').collect::<Vec<_>>()[..] {
            [segment] if is_upper_hex(segment, 24) => WalKind::Segment,
            [segment, "partial"] if is_upper_hex(segment, 24) => WalKind::Partial,
            [segment, offset, "backup"] if is_upper_hex(segment, 24) && is_upper_hex(offset, 8) => {
                WalKind::BackupHistory
            }
            [timeline, "history"] if is_upper_hex(timeline, 8) => WalKind::History,
            _ => return None,
        };
        Some(WalName {
            name: name.to_owned(),
            kind,
        })
    }

    /// `name`, or an error saying which shapes are expected.
    pub fn checked(name: &str) -> anyhow::Result<WalName> {
        WalName::parse(name).with_context(|| {
            format!(
                "{name:?} is not a WAL file name: expected a segment (24 hex digits), \
                 SEGMENT.partial, SEGMENT.OFFSET.backup or TIMELINE.history"
            )
        })
    }

    /// The directory of the archive in `place` that holds this file.
    fn dir(&self, place: &Path) -> PathBuf {
        let wal = place.join(WAL_DIR);
        match self.kind {
            WalKind::History => wal,
            _ => wal.join(&self.name[..16]),
        }
    }

    /// Where this file is stored in the archive at `place`.
    pub fn stored(&self, place: &Path) -> PathBuf {
        self.dir(place).join(format!("{}{SUFFIX}", self.name))
    }
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Stored now; the bytes it takes in the archive.
    Stored(u64),
    /// Already in the archive with the same content.
    AlreadyThere,
}

/// Archives the file `source` (the `%p` of `archive_command`) in `place`.
///
/// Fails, so that PostgreSQL keeps the file and tries again, when it cannot
/// be read or stored, or when the archive holds other content under its
/// name (never overwritten).
pub fn push(source: &Path, place: &Path) -> anyhow::Result<Pushed> {
    let name = source
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} names no WAL file", source.display()))?;
    let name = WalName::checked(name)?;
    let stored = name.stored(place);
    if ops_storage::stat(&stored)?.is_some() {
        return same_as_stored(source, &name, &stored);
    }
    prepare(place, &name)?;
    let written = match store(source, &stored) {
        Err(err) if is_exists(&err) => {
            if ops_storage::stat(&stored)?.is_some() {
                return same_as_stored(source, &name, &stored);
            }
            clear_stale_temp(&stored)?;
            store(source, &stored)
        }
        written => written,
    };
    let written =
        written.with_context(|| format!("cannot archive {} in {}", name.name, place.display()))?;
    Ok(Pushed::Stored(written))
}

fn is_exists(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|err| err.kind() == io::ErrorKind::AlreadyExists)
}

/// Compresses `source` into a new object at `stored`; the bytes written.
fn store(source: &Path, stored: &Path) -> anyhow::Result<u64> {
    let file = ops_shared::open::regular_file(source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let upload = ops_storage::create(stored, Mode::New)?;
    let mut counted = Counted {
        inner: upload,
        bytes: 0,
    };
    let mut encoder = zstd::stream::Encoder::new(&mut counted, 1)?;
    encoder.include_checksum(true)?;
    let mut hashing = Hashing::new(BufReader::with_capacity(1 << 20, file));
    io::copy(&mut hashing, &mut encoder)?;
    encoder.finish()?;
    counted.write_all(&trailer(&hashing.finish()))?;
    let Counted { inner, bytes } = counted;
    inner.commit()?;
    Ok(bytes)
}

/// Whether the archived `stored` holds what `source` holds.
fn same_as_stored(source: &Path, name: &WalName, stored: &Path) -> anyhow::Result<Pushed> {
    let mut local = Hashing::new(
        ops_shared::open::regular_file(source)
            .with_context(|| format!("cannot read {}", source.display()))?,
    );
    io::copy(&mut local, &mut io::sink())?;
    let archived = read_stored(stored, &mut io::sink()).with_context(|| {
        format!(
            "{} is archived already but its copy in {} cannot be read",
            name.name,
            stored.display()
        )
    })?;
    if archived != local.finish() {
        bail!(
            "{} is archived already with different content ({}); it is not overwritten: \
             is another server archiving into the same place?",
            name.name,
            stored.display()
        );
    }
    Ok(Pushed::AlreadyThere)
}

/// Fetches `name` from the archive at `place` into `dest` (the `%f` and
/// `%p` of `restore_command`), checked against its SHA-256.
///
/// Returns `false`, writing nothing, when the archive does not have it.
pub fn get(name: &str, dest: &Path, place: &Path) -> anyhow::Result<bool> {
    let name = WalName::checked(name)?;
    let stored = name.stored(place);
    if ops_storage::stat(&stored)?.is_none() {
        return Ok(false);
    }
    let mut out = ops_shared::atomic::AtomicFile::replace(dest)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    read_stored(&stored, out.file()).with_context(|| {
        format!(
            "{} in the archive ({}) is damaged; recovery cannot go past it",
            name.name,
            stored.display()
        )
    })?;
    out.commit()
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(true)
}

/// Decompresses the archived `stored` into `out`, checking it against its
/// trailer; returns its SHA-256.
fn read_stored(stored: &Path, out: &mut impl Write) -> anyhow::Result<[u8; 32]> {
    let mut source = KeepTail::new(ops_storage::open(stored)?);
    let mut decoder = zstd::stream::Decoder::new(&mut source)?;
    let mut hashing = Hashing::new(&mut decoder);
    io::copy(&mut hashing, out)?;
    let content = hashing.finish();
    drop(decoder);
    io::copy(&mut source, &mut io::sink())?;
    let tail = source.tail();
    if tail.len() != TRAILER_LEN || tail[..8] != trailer(&content)[..8] {
        bail!("it does not end in its checksum");
    }
    if tail[8..] != content {
        bail!("its content does not match its checksum");
    }
    Ok(content)
}

fn trailer(sha256: &[u8; 32]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(TRAILER_LEN);
    frame.extend_from_slice(&TRAILER_MAGIC.to_le_bytes());
    frame.extend_from_slice(&32u32.to_le_bytes());
    frame.extend_from_slice(sha256);
    frame
}

/// Makes the archive's directories for `name` in a local `place` (a bucket
/// needs none), refusing links in their place.
fn prepare(place: &Path, name: &WalName) -> anyhow::Result<()> {
    if ops_storage::is_remote(place) {
        return Ok(());
    }
    let wal = place.join(WAL_DIR);
    for dir in [place.to_path_buf(), wal.clone(), name.dir(place)] {
        ops_storage::prepare(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if dir != place && !fs::symlink_metadata(&dir)?.is_dir() {
            bail!(
                "{} is not a directory (a link someone put in its place?); not archiving through it",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Removes the temporary file of a push that was killed mid-write, once it
/// is old enough that no push is still writing it.
fn clear_stale_temp(stored: &Path) -> anyhow::Result<()> {
    let temp = ops_shared::atomic::with_suffix(stored, ops_shared::atomic::TEMP_SUFFIX);
    let meta = fs::symlink_metadata(&temp)
        .with_context(|| format!("cannot archive into {}", stored.display()))?;
    let age = jiff::Timestamp::now().as_second() - meta.mtime();
    if age < STALE_TEMP.as_secs() as i64 {
        bail!(
            "another push of {} is under way ({} exists); try again later",
            stored.display(),
            temp.display()
        );
    }
    fs::remove_file(&temp).with_context(|| format!("cannot remove {}", temp.display()))?;
    Ok(())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// A writer that counts what passes through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that keeps the last bytes read, for the trailer.
struct KeepTail<R> {
    inner: R,
    tail: Vec<u8>,
}

impl<R: Read> KeepTail<R> {
    fn new(inner: R) -> Self {
        KeepTail {
            inner,
            tail: Vec::with_capacity(2 * TRAILER_LEN),
        }
    }

    fn tail(&self) -> &[u8] {
        &self.tail[self.tail.len().saturating_sub(TRAILER_LEN)..]
    }
}

impl<R: Read> Read for KeepTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let got = &buf[..read];
        if got.len() >= TRAILER_LEN {
            self.tail.clear();
            self.tail.extend_from_slice(&got[got.len() - TRAILER_LEN..]);
        } else {
            self.tail.extend_from_slice(got);
            let extra = self.tail.len().saturating_sub(TRAILER_LEN);
            self.tail.drain(..extra);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_postgresql_shapes_are_names() {
        for good in [
            "000000010000000000000003",
            "00000002000000A1000000FF.partial",
            "000000010000000000000003.00000028.backup",
            "00000002.history",
        ] {
            assert!(WalName::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "../../etc/passwd",
            "00000001000000000000000",
            "0000000100000000000000030",
            "000000010000000000000003/x",
            "00000001000000000000000a",
            "00000002.history.zst",
            "000000010000000000000003.partial.x",
            "RECOVERYXLOG",
        ] {
            assert!(WalName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn segments_are_filed_by_timeline_and_log() {
        let place = Path::new("/b");
        let segment = WalName::parse("000000010000000200000003").unwrap();
        assert_eq!(
            segment.stored(place),
            Path::new("/b/wal/0000000100000002/000000010000000200000003.zst")
        );
        let history = WalName::parse("00000002.history").unwrap();
        assert_eq!(
            history.stored(place),
            Path::new("/b/wal/00000002.history.zst")
        );
    }

    #[test]
    fn the_tail_keeper_keeps_the_last_bytes_across_reads() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut keeper = KeepTail::new(&data[..]);
        let mut buf = [0u8; 7];
        while keeper.read(&mut buf).unwrap() > 0 {}
        assert_eq!(keeper.tail(), &data[1000 - TRAILER_LEN..]);
    }
}
