//! Directory locks that cannot go stale: the kernel drops them when their
//! holder exits, however it exits.
//!
//! A lock is `flock(2)` on `<dir>/.ops-lock`. Tools that only add to a
//! directory (ops-backup) hold it shared, so several run side by side; tools
//! that delete (ops-prune) hold it exclusive. Whoever gets the lock writes an
//! owner line (tool, pid, host, since) into the file, so a process that has to
//! wait can say whom it waits for. The file is never removed: removing it
//! would let two processes lock two different files.
//!
//! The directory may be writable by others, so the lock file is opened
//! relative to the directory without following a link, and used only if it
//! is a regular file with one name, owned by us or by the directory's owner
//! (who could replace it anyway): a planted symlink or hard link would
//! otherwise make us truncate and write someone else's file.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rustix::fs::{FileType, Mode, OFlags};
use serde::{Deserialize, Serialize};

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = ".ops-lock";

/// How a directory is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Adding items; others may add at the same time.
    Shared,
    /// Deleting items; nobody else may hold the directory.
    Exclusive,
}

/// Who holds (or last held) a lock, as written in the lock file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub tool: String,
    pub pid: u32,
    pub host: String,
    pub since: Timestamp,
}

impl Owner {
    /// This process, running `tool`, from this second.
    pub fn now(tool: &str) -> Owner {
        Owner {
            tool: tool.to_owned(),
            pid: std::process::id(),
            host: hostname(),
            since: Timestamp::from_second(Timestamp::now().as_second())
                .unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, since {})",
            self.tool, self.pid, self.host, self.since
        )
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir} is locked by {holder}{waited}; try again when it has finished, or wait longer with --lock-wait",
        dir = dir.display(),
        holder = owner.as_ref().map_or("another process".to_owned(), Owner::to_string),
        waited = if waited.is_zero() { String::new() } else {
            format!(" (waited {})", humantime::format_duration(*waited))
        }
    )]
    Held {
        dir: PathBuf,
        owner: Option<Owner>,
        waited: Duration,
    },
    #[error("cannot use the lock file {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error(
        "refusing the lock file {}: it is {what}, not a lock file an ops tool made; \
         someone may be trying to make this tool overwrite another file: check who made it, \
         remove it and run again",
        path.display()
    )]
    Refused { path: PathBuf, what: String },
}

/// A held lock on a directory; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` for `access` on behalf of `tool`, waiting up to `wait`
    /// for other holders to finish (saying once on stderr whom it waits for).
    ///
    /// Fails with [`LockError::Held`] when the wait runs out, and with
    /// [`LockError::Io`] when the lock file cannot be opened or written.
    pub fn acquire(
        dir: &Path,
        access: Access,
        wait: Duration,
        tool: &str,
    ) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_error = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        let mut file = open_lock_file(dir).map_err(|err| match err {
            Opened::Refused(what) => LockError::Refused {
                path: path.clone(),
                what,
            },
            Opened::Io(error) => io_error(error),
        })?;
        let started = Instant::now();
        let mut told = false;
        loop {
            let attempt = match access {
                Access::Shared => file.try_lock_shared(),
                Access::Exclusive => file.try_lock(),
            };
            match attempt {
                Ok(()) => break,
                Err(TryLockError::Error(err)) => return Err(io_error(err)),
                Err(TryLockError::WouldBlock) => {
                    let owner = read_owner(&mut file);
                    if started.elapsed() >= wait {
                        return Err(LockError::Held {
                            dir: dir.to_owned(),
                            owner,
                            waited: wait,
                        });
                    }
                    if !told {
                        told = true;
                        let holder = owner.map_or("another process".into(), |o| o.to_string());
                        crate::entry::warn(format!(
                            "{} is locked by {holder}; waiting up to {}",
                            dir.display(),
                            humantime::format_duration(wait)
                        ));
                    }
                    thread::sleep(
                        Duration::from_millis(100).min(wait.saturating_sub(started.elapsed())),
                    );
                }
            }
        }
        write_owner(&mut file, tool).map_err(io_error)?;
        Ok(DirLock { _file: file })
    }
}

enum Opened {
    Refused(String),
    Io(io::Error),
}

fn open_lock_file(dir: &Path) -> Result<File, Opened> {
    let io = |err: rustix::io::Errno| Opened::Io(err.into());
    let dir_fd = crate::atomic::open_dir(dir).map_err(Opened::Io)?;
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(&dir_fd, LOCK_FILE, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return Err(Opened::Refused("a symbolic link".into())),
        Err(err) => return Err(io(err)),
    };
    let (stat, dir_stat) = (
        rustix::fs::fstat(&fd).map_err(io)?,
        rustix::fs::fstat(&dir_fd).map_err(io)?,
    );
    let me = rustix::process::geteuid().as_raw();
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Opened::Refused("not a regular file".into()));
    }
    if stat.st_nlink != 1 {
        return Err(Opened::Refused(format!(
            "a file with {} hard links",
            stat.st_nlink
        )));
    }
    if stat.st_uid != me && stat.st_uid != dir_stat.st_uid {
        return Err(Opened::Refused(format!(
            "owned by uid {}, neither us nor the directory's owner",
            stat.st_uid
        )));
    }
    Ok(File::from(fd))
}

fn read_owner(file: &mut File) -> Option<Owner> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.lines().next()?).ok()
}

fn write_owner(file: &mut File, tool: &str) -> io::Result<()> {
    let mut line = serde_json::to_vec(&Owner::now(tool))?;
    line.push(b'\n');
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(&line)
}

/// This machine's name, as the kernel has it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "this host".into(), |name| name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(dir: &Path, access: Access) -> Result<DirLock, LockError> {
        DirLock::acquire(dir, access, Duration::ZERO, "test")
    }

    #[test]
    fn shared_holders_coexist_and_keep_an_exclusive_one_out() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path(), Access::Shared).unwrap();
        let second = lock(dir.path(), Access::Shared).unwrap();
        let err = lock(dir.path(), Access::Exclusive).unwrap_err().to_string();
        assert!(err.contains("is locked by test (pid "), "{err}");
        assert!(err.contains("--lock-wait"), "{err}");
        drop((first, second));
        assert!(lock(dir.path(), Access::Exclusive).is_ok());
    }

    #[test]
    fn an_exclusive_holder_keeps_everyone_out_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), Access::Exclusive).unwrap();
        assert!(lock(dir.path(), Access::Shared).is_err());
        assert!(lock(dir.path(), Access::Exclusive).is_err());
        drop(held);
        assert!(lock(dir.path(), Access::Shared).is_ok());
    }

    #[test]
    fn a_waiter_gets_the_lock_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), Access::Exclusive).unwrap();
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let waited = DirLock::acquire(
            dir.path(),
            Access::Exclusive,
            Duration::from_secs(10),
            "test",
        );
        assert!(waited.is_ok());
        releaser.join().unwrap();
    }

    #[test]
    fn the_lock_file_is_owner_only_and_names_its_holder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let _held = DirLock::acquire(dir.path(), Access::Shared, Duration::ZERO, "ops-x").unwrap();
        let path = dir.path().join(LOCK_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let owner: Owner =
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert_eq!(owner.tool, "ops-x");
        assert_eq!(owner.pid, std::process::id());
    }

    fn refused(dir: &Path) -> String {
        match lock(dir, Access::Exclusive) {
            Err(err @ LockError::Refused { .. }) => err.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_symlinked_lock_file_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("shadow");
        std::fs::write(&victim, "root:secret\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(LOCK_FILE)).unwrap();
        let err = refused(dir.path());
        assert!(err.contains("a symbolic link"), "{err}");
        assert!(err.contains("remove it"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");
    }

    #[test]
    fn a_hard_linked_lock_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("passwd");
        std::fs::write(&victim, "root:x:0:0\n").unwrap();
        std::fs::hard_link(&victim, dir.path().join(LOCK_FILE)).unwrap();
        let err = refused(dir.path());
        assert!(err.contains("2 hard links"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
    }

    #[test]
    fn a_lock_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(LOCK_FILE)).unwrap();
        let err = match lock(dir.path(), Access::Shared) {
            Err(err @ (LockError::Refused { .. } | LockError::Io { .. })) => err.to_string(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert!(err.contains(LOCK_FILE), "{err}");
        let fifo = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(fifo.path().join(LOCK_FILE))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(refused(fifo.path()).contains("not a regular file"));
    }

    #[test]
    fn a_lock_file_owned_by_a_stranger_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        drop(lock(dir.path(), Access::Shared).unwrap());
        let path = dir.path().join(LOCK_FILE);
        if std::os::unix::fs::chown(&path, Some(54321), None).is_err() {
            eprintln!("not root: cannot give the lock file away; skipped");
            return;
        }
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), 54321);
        assert!(refused(dir.path()).contains("owned by uid 54321"));
        // The directory's owner may have made it: then it is fine.
        std::os::unix::fs::chown(dir.path(), Some(54321), None).unwrap();
        assert!(lock(dir.path(), Access::Shared).is_ok());
    }
}
