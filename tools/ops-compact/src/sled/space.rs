//! Free space for the rebuilt copy. sled 0.34 does not fail when the disk
//! fills up: its flush waits forever for a write that failed. So the space
//! is checked before (the copy holds at least the live bytes) and watched
//! while the copy is written: when the filesystem has less than a floor
//! left for the application, the copy is removed and the process exits,
//! the original untouched and still locked by nobody but us.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::bail;
use ops_shared::record::human_bytes;

use ops_backup::sleddb::Owners;

/// Space on the filesystem of `dir`: available to ordinary users (the
/// application), and the floor a compaction leaves them.
fn space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir)?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    let size = stat.f_blocks.saturating_mul(stat.f_frsize);
    Ok((available, (size / 50).clamp(1 << 20, 64 << 20)))
}

/// Refuses a rebuild that cannot fit: `live` bytes need to be written
/// beside the database at `db` in `dir`, keeping the floor free.
///
/// Fails when there is not that much space (or it cannot be found out).
pub fn check(db: &Path, dir: &Path, live: u64) -> anyhow::Result<()> {
    let (available, floor) = space(dir)?;
    if available < live.saturating_add(floor) {
        bail!(
            "not enough free space to compact {}: the rebuilt copy needs more than its {} of \
             live data beside it, and {} is free on {} ({} of it left to the application); \
             nothing was changed. Free some space, or compact when the disk has room",
            db.display(),
            human_bytes(live),
            human_bytes(available),
            dir.display(),
            human_bytes(floor)
        );
    }
    Ok(())
}

/// Watches the filesystem while a copy is written (see the module docs).
pub struct Watch {
    watching: Arc<Mutex<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts watching `dir` while `copy` of `db` is written; `owners` are
    /// given back to `db` if the process has to leave.
    pub fn start(db: &Path, copy: &Path, dir: &Path, owners: Owners) -> Watch {
        let watching = Arc::new(Mutex::new(true));
        let (db, copy, dir) = (db.to_owned(), copy.to_owned(), dir.to_owned());
        let thread = {
            let watching = watching.clone();
            std::thread::spawn(move || watch(&watching, &db, &copy, &dir, &owners))
        };
        Watch {
            watching,
            thread: Some(thread),
        }
    }

    /// Stops watching; once this returns the copy is no longer removed.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        *self
            .watching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.halt();
    }
}

fn watch(watching: &Mutex<bool>, db: &Path, copy: &PathBuf, dir: &Path, owners: &Owners) {
    loop {
        std::thread::park_timeout(Duration::from_millis(100));
        let still = watching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*still {
            return;
        }
        let Ok((available, floor)) = space(dir) else {
            continue;
        };
        if available >= floor {
            continue;
        }
        // sled's threads may still add files while it is removed.
        let removed = (0..20).any(|_| {
            std::fs::remove_dir_all(copy).is_ok() || std::fs::symlink_metadata(copy).is_err()
        });
        let left = if removed {
            "the copy was removed".to_owned()
        } else {
            format!("remove the leftover {}", copy.display())
        };
        ops_shared::entry::error(format!(
            "the disk filled up while {} was being compacted: {} free on {}, under the {} \
             left to the application; {left}, and the database is as it was. Free some space \
             and run again",
            db.display(),
            human_bytes(available),
            dir.display(),
            human_bytes(floor)
        ));
        let _ = owners.apply(db);
        // sled waits forever for its failed writes; only leaving stops it.
        std::process::exit(1);
    }
}
