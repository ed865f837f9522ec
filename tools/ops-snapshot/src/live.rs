//! Files another process holds a lock on, as a running database holds its
//! own: a snapshot reads them while they change and stores a torn state, so
//! the run says so and points at a backup that is consistent.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ops_shared::entry::warn;

/// The locked files of the system: (major, minor, inode) to the holder's pid.
#[derive(Default)]
pub struct Locked(HashMap<(u32, u32, u64), u32>);

impl Locked {
    /// Reads `/proc/locks` (flock and POSIX locks), leaving out our own.
    pub fn read() -> Self {
        let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        Locked::parse(&text, std::process::id())
    }

    fn parse(text: &str, own_pid: u32) -> Self {
        let held = text.lines().filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pid: u32 = fields.get(4)?.parse().ok()?;
            let mut device = fields.get(5)?.split(':');
            let major = u32::from_str_radix(device.next()?, 16).ok()?;
            let minor = u32::from_str_radix(device.next()?, 16).ok()?;
            let inode = device.next()?.parse().ok()?;
            (pid != own_pid).then_some(((major, minor, inode), pid))
        });
        Locked(held.collect())
    }

    /// Warns when the file at `path` is locked by another process.
    pub fn warn_if_held(&self, path: &Path, meta: &Metadata) {
        if self.0.is_empty() || path.file_name() == Some(ops_shared::lock::LOCK_FILE.as_ref()) {
            return;
        }
        let dev = meta.dev();
        let key = (rustix::fs::major(dev), rustix::fs::minor(dev), meta.ino());
        if let Some(pid) = self.0.get(&key) {
            let dir = path.parent().unwrap_or(path);
            warn(format!(
                "{} is locked by process {pid}, as a running database holds its files: \
                 the snapshot stores it as it changes, which may not open again. Stop \
                 the program first, or back it up consistently: `ops-backup create \
                 sled:{}` for a sled database, `ops-backup create postgres://...` for \
                 PostgreSQL",
                path.display(),
                dir.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_of_other_processes_are_read_and_ours_left_out() {
        let text = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 7 00:2f:99 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 4242 08:10:55 0 EOF\n\
                    garbage\n";
        let locked = Locked::parse(text, 7);
        assert_eq!(locked.0.get(&(0xfd, 1, 1234)), Some(&4242));
        assert_eq!(locked.0.get(&(8, 16, 55)), Some(&4242));
        assert_eq!(locked.0.get(&(0, 0x2f, 99)), None);
        assert_eq!(locked.0.len(), 2);
    }
}
