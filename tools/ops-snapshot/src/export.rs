//! `ops-snapshot export`: one snapshot as a tar archive compressed with
//! zstd on stdout, for another server or for tools that know no repository.

use std::io::{self, IsTerminal, Read, Write};

use anyhow::Context;
use ops_shared::Status;
use tar::{EntryType, Header};

use crate::cli::ExportArgs;
use crate::id::Id;
use crate::reader::{ChunkReader, LastPack};
use crate::tree::{Kind, TreeReader};

pub fn run(args: &ExportArgs) -> anyhow::Result<Status> {
    if io::stdout().is_terminal() {
        return Err(ops_shared::UsageError(
            "export writes an archive to stdout; redirect it to a file (> data.tar.zst)".into(),
        )
        .into());
    }
    let root = args.repo.path()?;
    let (reader, _lock) =
        crate::reader::open_reader(root, args.repo.lock_wait, "ops-snapshot export")?;
    let (id, manifest) = reader.repo.resolve(&args.snapshot)?;
    let mut encoder = zstd::Encoder::new(io::stdout().lock(), args.level)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    encoder.multithread(u32::try_from(threads).unwrap_or(1))?;
    let mut archive = tar::Builder::new(encoder);
    let mut last = LastPack::default();
    for node in TreeReader::new(&reader, &manifest.tree) {
        let node = node?;
        let mut header = Header::new_gnu();
        header.set_mode(node.mode);
        header.set_uid(u64::from(node.uid));
        header.set_gid(u64::from(node.gid));
        header.set_mtime(u64::try_from(node.mtime / 1_000_000_000).unwrap_or(0));
        let written = match node.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                archive.append_data(&mut header, &node.path, io::empty())
            }
            Kind::File => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(node.size);
                let content = Chunks {
                    reader: &reader,
                    last: &mut last,
                    ids: node.chunks.iter(),
                    current: io::Cursor::new(Vec::new()),
                };
                archive.append_data(&mut header, &node.path, content)
            }
            Kind::Symlink | Kind::Hardlink => {
                let kind = if node.kind == Kind::Symlink {
                    EntryType::Symlink
                } else {
                    EntryType::Link
                };
                header.set_entry_type(kind);
                header.set_size(0);
                archive.append_link(&mut header, &node.path, &node.target)
            }
        };
        written.with_context(|| format!("cannot export {}", node.path.display()))?;
    }
    let encoder = archive.into_inner()?;
    let mut stdout = encoder.finish()?;
    stdout.flush()?;
    ops_shared::entry::note(format!(
        "exported snapshot {}: {} files",
        &id[..8],
        manifest.files
    ));
    Ok(Status::Success)
}

/// A file's content, chunk after chunk, each checked as it is read.
struct Chunks<'a, 'l, I: Iterator<Item = &'a Id>> {
    reader: &'a ChunkReader,
    last: &'l mut LastPack,
    ids: I,
    current: io::Cursor<Vec<u8>>,
}

impl<'a, I: Iterator<Item = &'a Id>> Read for Chunks<'a, '_, I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(id) = self.ids.next() else {
                return Ok(0);
            };
            let data = self.reader.read(id, self.last).map_err(io::Error::other)?;
            self.current = io::Cursor::new(data);
        }
    }
}
