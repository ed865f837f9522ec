//! Which files some process has open for writing, from /proc/*/fd: the
//! check `fuser`/`lsof` users make by hand before compressing a log.
//!
//! A file is identified by device and inode, so a name that was renamed or
//! a link followed still matches. Processes of other users are visible to
//! root only; their files are then treated as not open.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A file's identity on this machine.
pub type FileId = (u64, u64);

/// Files open for writing, with one process that holds each.
#[derive(Debug, Default)]
pub struct OpenForWriting {
    holders: HashMap<FileId, Holder>,
}

#[derive(Clone, Debug)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

impl OpenForWriting {
    /// Scans every process's open files, keeping those among `wanted`
    /// (device, inode) that are open with write access.
    pub fn scan(wanted: &std::collections::HashSet<FileId>) -> Self {
        let mut holders = HashMap::new();
        if wanted.is_empty() {
            return OpenForWriting { holders };
        }
        let Ok(procs) = fs::read_dir("/proc") else {
            return OpenForWriting { holders };
        };
        for entry in procs.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let proc_dir = entry.path();
            let Ok(fds) = fs::read_dir(proc_dir.join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(meta) = fs::metadata(fd.path()) else {
                    continue;
                };
                let id = (meta.dev(), meta.ino());
                if !meta.is_file() || !wanted.contains(&id) || holders.contains_key(&id) {
                    continue;
                }
                if writable(&proc_dir.join("fdinfo").join(fd.file_name())) {
                    holders.insert(
                        id,
                        Holder {
                            pid,
                            command: command(&proc_dir),
                        },
                    );
                }
            }
        }
        OpenForWriting { holders }
    }

    /// Who has the file open for writing, if anyone.
    pub fn holder(&self, id: FileId) -> Option<&Holder> {
        self.holders.get(&id)
    }
}

/// Whether an fdinfo file says the descriptor was opened for writing
/// (`flags:` in octal; O_WRONLY is 1, O_RDWR is 2).
fn writable(fdinfo: &Path) -> bool {
    let Ok(text) = fs::read_to_string(fdinfo) else {
        // The descriptor closed meanwhile, or we may not look: assume the
        // worst, so a file is never compressed under a writer.
        return true;
    };
    text.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_none_or(|flags| flags & 0o3 != 0)
}

fn command(proc_dir: &Path) -> String {
    fs::read_to_string(proc_dir.join("comm")).map_or_else(|_| "?".into(), |c| c.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn our_own_writer_is_seen_and_a_reader_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let written = dir.path().join("w.log");
        let read = dir.path().join("r.log");
        fs::write(&read, "x").unwrap();
        let _writer = fs::File::create(&written).unwrap();
        let _reader = fs::File::open(&read).unwrap();
        let id = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            (m.dev(), m.ino())
        };
        let wanted: HashSet<FileId> = [id(&written), id(&read)].into();
        let open = OpenForWriting::scan(&wanted);
        let holder = open.holder(id(&written)).unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert!(open.holder(id(&read)).is_none());
    }
}
