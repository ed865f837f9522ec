//! Locks on a place, with the meaning of `ops_shared::lock` (shared to
//! add, exclusive to delete) whatever the backend.
//!
//! A local directory gets its `flock`. A bucket has none, so a holder
//! writes a lock object, `PLACE/.ops-lock/<host>-<pid>-<nanos>`, holding its
//! [`Owner`] and its access, and then lists the others: it holds the lock
//! if none of them conflicts, else it removes its own and tries again.
//! Every holder writes before it looks, so of two that conflict at least
//! one sees the other (S3 lists what was written before; AWS and SeaweedFS
//! promise it). A holder rewrites its object every sixth of
//! [`STALE_AFTER`]; one not rewritten for that long (its holder was killed
//! or lost the network) is stale: ignored with a warning, and removed by
//! an exclusive holder. Ages are measured with the server's clock (the
//! holder's own fresh object is "now"), so hosts' clocks need not agree;
//! each object carries its writer's stale time, and the longer one counts.
//!
//! A holder whose object was removed meanwhile (it went stale) has lost
//! the lock: its refresher stops rather than write it again, and
//! [`PlaceLock::ensure_held`], called before a commit or a deletion, fails.
//! An interrupted holder removes its object on the way out.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use ops_shared::lock::{Access, DirLock, LockError, Owner};
use serde::{Deserialize, Serialize};

use crate::{Mode, Object};

/// A lock object not rewritten for this long is stale; `OPS_LOCK_STALE`
/// (seconds, at least 1) overrides it.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

const DIR: &str = ".ops-lock";

/// A held lock on a place; released when dropped.
#[derive(Debug)]
pub enum PlaceLock {
    Dir(DirLock),
    Object(ObjectLock),
}

impl PlaceLock {
    /// Fails if the lock was lost (its lock object went stale and another
    /// run removed it); call it before committing or deleting anything.
    pub fn ensure_held(&self) -> io::Result<()> {
        match self {
            PlaceLock::Dir(_) => Ok(()),
            PlaceLock::Object(lock) => lock.ensure_held(),
        }
    }
}

/// Locks `place` for `access` on behalf of `tool`, waiting up to `wait`
/// for conflicting holders (saying once on stderr whom it waits for).
///
/// Fails with [`LockError::Held`] when the wait runs out, and with
/// [`LockError::Io`] when the lock cannot be written or the others listed.
pub fn lock(
    place: &Path,
    access: Access,
    wait: Duration,
    tool: &str,
) -> Result<PlaceLock, LockError> {
    if crate::is_remote(place) {
        ObjectLock::acquire(place, access, wait, tool).map(PlaceLock::Object)
    } else {
        DirLock::acquire(place, access, wait, tool).map(PlaceLock::Dir)
    }
}

/// What a lock object holds.
#[derive(Serialize, Deserialize)]
struct Holder {
    #[serde(flatten)]
    owner: Owner,
    exclusive: bool,
    /// The writer's stale time, in seconds.
    #[serde(default)]
    stale_seconds: u64,
}

/// A lock object of ours, kept fresh by a thread until dropped.
#[derive(Debug)]
pub struct ObjectLock {
    path: PathBuf,
    lost: Arc<AtomicBool>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
    _interrupted: ops_shared::interrupt::Guard,
}

fn stale_after() -> Duration {
    std::env::var("OPS_LOCK_STALE")
        .ok()
        .and_then(|secs| secs.parse::<u64>().ok())
        .map_or(STALE_AFTER, |secs| Duration::from_secs(secs.max(1)))
}

/// Up to half a second, different between processes and tries.
fn jitter() -> Duration {
    let nanos = u64::from(Timestamp::now().subsec_nanosecond().unsigned_abs());
    Duration::from_millis((nanos ^ u64::from(std::process::id())) % 500)
}

/// The host name as a key segment: letters, digits, `.` and `-` only.
fn host_segment() -> String {
    let host: String = ops_shared::lock::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if host.is_empty() {
        "host".into()
    } else {
        host
    }
}

impl ObjectLock {
    fn acquire(
        place: &Path,
        access: Access,
        wait: Duration,
        tool: &str,
    ) -> Result<ObjectLock, LockError> {
        let dir = place.join(DIR);
        let io_error = |error| LockError::Io {
            path: dir.clone(),
            error,
        };
        let name = format!(
            "{}-{}-{}",
            host_segment(),
            std::process::id(),
            Timestamp::now().as_nanosecond()
        );
        let path = dir.join(&name);
        let held = Holder {
            owner: Owner::now(tool),
            exclusive: access == Access::Exclusive,
            stale_seconds: stale_after().as_secs(),
        };
        let text = serde_json::to_vec(&held).map_err(|err| io_error(err.into()))?;
        let started = Instant::now();
        let mut told = false;
        loop {
            crate::write(&path, Mode::Replace, text.clone()).map_err(io_error)?;
            let conflict = match conflicting(&dir, &name, access) {
                Ok(conflict) => conflict,
                Err(err) => {
                    let _ = crate::delete(&path);
                    return Err(io_error(err));
                }
            };
            let Some(owner) = conflict else {
                break;
            };
            crate::delete(&path).map_err(io_error)?;
            if started.elapsed() >= wait {
                return Err(LockError::Held {
                    dir: place.to_owned(),
                    owner: Some(owner),
                    waited: wait,
                });
            }
            if !told {
                told = true;
                ops_shared::entry::warn(format!(
                    "{} is locked by {owner}; waiting up to {}",
                    place.display(),
                    humantime::format_duration(wait)
                ));
            }
            // Two that keep meeting each other must not keep retrying in step.
            thread::sleep(
                (Duration::from_millis(500) + jitter()).min(wait.saturating_sub(started.elapsed())),
            );
        }
        let (stop, stopped) = mpsc::channel();
        let lost = Arc::new(AtomicBool::new(false));
        let refresher = {
            let (path, lost) = (path.clone(), Arc::clone(&lost));
            thread::spawn(move || refresh(&path, &text, &lost, &stopped))
        };
        let removed = path.clone();
        let interrupted = ops_shared::interrupt::on_interrupt(move || {
            crate::delete(&removed).err().map(|err| {
                format!(
                    "the lock {} is left ({err}); it goes stale by itself",
                    removed.display()
                )
            })
        });
        Ok(ObjectLock {
            path,
            lost,
            stop: Some(stop),
            refresher: Some(refresher),
            _interrupted: interrupted,
        })
    }

    fn ensure_held(&self) -> io::Result<()> {
        let there = crate::stat(&self.path)?.is_some();
        if self.lost.load(Ordering::SeqCst) || !there {
            self.lost.store(true, Ordering::SeqCst);
            return Err(io::Error::other(format!(
                "lost the lock {}: it was not refreshed in time and another run removed it \
                 as stale; nothing more was committed or deleted: run again",
                self.path.display()
            )));
        }
        Ok(())
    }
}

/// Rewrites the lock object at `path` every sixth of the stale time until
/// told to stop; if the object is gone, the lock is `lost` and it stops.
fn refresh(path: &Path, text: &[u8], lost: &AtomicBool, stopped: &Receiver<()>) {
    let every = stale_after() / 6;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        let written = match crate::stat(path) {
            Ok(None) => {
                lost.store(true, Ordering::SeqCst);
                ops_shared::entry::warn(format!(
                    "the lock {} was removed as stale: this run has lost it and commits \
                     nothing more",
                    path.display()
                ));
                return;
            }
            Ok(Some(_)) => crate::write(path, Mode::Replace, text.to_vec()),
            Err(err) => Err(err),
        };
        if let Err(err) = written {
            ops_shared::entry::warn(format!(
                "cannot refresh the lock {}: {err}; it goes stale after {} without",
                path.display(),
                humantime::format_duration(stale_after())
            ));
        }
    }
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
        }
        if let Err(err) = crate::delete(&self.path) {
            ops_shared::entry::warn(format!(
                "cannot remove the lock {}: {err}; it is ignored once stale",
                self.path.display()
            ));
        }
    }
}

/// The holder of a lock object in `dir` that conflicts with ours (`mine`).
fn conflicting(dir: &Path, mine: &str, access: Access) -> io::Result<Option<Owner>> {
    let objects = crate::list(dir)?;
    let now = objects
        .iter()
        .find(|object| object.name == mine)
        .and_then(|object| object.modified)
        .unwrap_or_else(Timestamp::now);
    for object in objects.iter().filter(|o| o.name != mine && o.regular) {
        let path = dir.join(&object.name);
        let held = match crate::read_small(&path, 4096) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            read => read
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Holder>(&bytes).ok()),
        };
        let theirs = held.as_ref().map_or(Duration::ZERO, |held| {
            Duration::from_secs(held.stale_seconds)
        });
        let stale = stale_after().max(theirs);
        if is_stale(object, now, stale) {
            ops_shared::entry::warn(format!(
                "ignoring the stale lock {} (not refreshed for more than {}; its holder was \
                 killed or lost the network){}",
                path.display(),
                humantime::format_duration(stale),
                if access == Access::Exclusive {
                    ": removing it"
                } else {
                    ""
                }
            ));
            if access == Access::Exclusive {
                crate::delete(&path)?;
            }
            continue;
        }
        match held {
            Some(held) if access == Access::Shared && !held.exclusive => {}
            Some(held) => return Ok(Some(printable(held.owner))),
            None => {
                return Ok(Some(Owner {
                    tool: format!(
                        "whoever wrote the unreadable lock object {}",
                        path.display()
                    ),
                    pid: 0,
                    host: "an unknown host".into(),
                    since: object.modified.unwrap_or(now),
                }))
            }
        }
    }
    Ok(None)
}

/// `owner` as read from someone else's object, without control characters.
fn printable(owner: Owner) -> Owner {
    let clean =
        |text: String| -> String { text.chars().filter(|c| !c.is_control()).take(200).collect() };
    Owner {
        tool: clean(owner.tool),
        host: clean(owner.host),
        ..owner
    }
}

fn is_stale(object: &Object, now: Timestamp, stale: Duration) -> bool {
    let Some(modified) = object.modified else {
        return false;
    };
    now.duration_since(modified)
        .try_into()
        .is_ok_and(|age: Duration| age > stale)
}
