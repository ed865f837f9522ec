//! Locks on a place, with the meaning of `ops_shared::lock` (shared to
//! add, exclusive to delete) whatever the backend.
//!
//! A local directory gets its `flock`. A bucket has none, so a holder
//! writes a lock object, `PLACE/.ops-lock/<pid>-<nanos>`, holding its
//! [`Owner`] and its access, and then lists the others: it holds the lock
//! if none of them conflicts, else it removes its own and tries again.
//! Every holder writes before it looks, so of two that conflict at least
//! one sees the other (S3 lists what was written before; AWS and SeaweedFS
//! promise it). A holder rewrites its object every sixth of
//! [`STALE_AFTER`]; one not rewritten for that long (its holder was killed
//! or lost the network) is stale: ignored with a warning, and removed by
//! an exclusive holder. Ages are measured with the server's clock (the
//! holder's own fresh object is "now"), so hosts' clocks need not agree.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use ops_shared::lock::{Access, DirLock, LockError, Owner};
use serde::{Deserialize, Serialize};

use crate::{Mode, Object};

/// A lock object not rewritten for this long is stale; `OPS_LOCK_STALE`
/// (seconds) overrides it.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

const DIR: &str = ".ops-lock";

/// A held lock on a place; released when dropped.
#[derive(Debug)]
pub enum PlaceLock {
    Dir(DirLock),
    Object(ObjectLock),
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
}

/// A lock object of ours, kept fresh by a thread until dropped.
#[derive(Debug)]
pub struct ObjectLock {
    path: PathBuf,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

fn stale_after() -> Duration {
    std::env::var("OPS_LOCK_STALE")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map_or(STALE_AFTER, Duration::from_secs)
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
            "{}-{}",
            std::process::id(),
            Timestamp::now().as_nanosecond()
        );
        let path = dir.join(&name);
        let held = Holder {
            owner: Owner::now(tool),
            exclusive: access == Access::Exclusive,
        };
        let text = serde_json::to_vec(&held).map_err(|err| io_error(err.into()))?;
        let started = Instant::now();
        let mut told = false;
        loop {
            crate::write(&path, Mode::Replace, &text).map_err(io_error)?;
            let conflict = match conflicting(&dir, &name, access) {
                Ok(conflict) => conflict,
                Err(err) => {
                    let _ = crate::delete(&path);
                    return Err(io_error(err));
                }
            };
            let Conflict::With(owner) = conflict else {
                break;
            };
            crate::delete(&path).map_err(io_error)?;
            if started.elapsed() >= wait {
                return Err(LockError::Held {
                    dir: place.to_owned(),
                    owner,
                    waited: wait,
                });
            }
            if !told {
                told = true;
                let holder = owner.map_or("another process".into(), |o| o.to_string());
                ops_shared::entry::warn(format!(
                    "{} is locked by {holder}; waiting up to {}",
                    place.display(),
                    humantime::format_duration(wait)
                ));
            }
            // Two that keep meeting each other must not keep retrying in step.
            let jitter = Duration::from_millis(u64::from(std::process::id() % 500));
            thread::sleep(
                (Duration::from_millis(500) + jitter).min(wait.saturating_sub(started.elapsed())),
            );
        }
        let (stop, stopped) = mpsc::channel();
        let refresh = stale_after() / 6;
        let refreshed = path.clone();
        let refresher = thread::spawn(move || loop {
            match stopped.recv_timeout(refresh) {
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(err) = crate::write(&refreshed, Mode::Replace, &text) {
                        ops_shared::entry::warn(format!(
                            "cannot refresh the lock {}: {err}; it goes stale after {} without",
                            refreshed.display(),
                            humantime::format_duration(stale_after())
                        ));
                    }
                }
                _ => return,
            }
        });
        Ok(ObjectLock {
            path,
            stop: Some(stop),
            refresher: Some(refresher),
        })
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

/// A lock object that keeps us out.
enum Conflict {
    None,
    /// Held by someone; `None` when its owner cannot be read.
    With(Option<Owner>),
}

/// Whether a lock object in `dir` conflicts with ours (`mine`).
fn conflicting(dir: &Path, mine: &str, access: Access) -> io::Result<Conflict> {
    let objects = crate::list(dir)?;
    let now = objects
        .iter()
        .find(|object| object.name == mine)
        .and_then(|object| object.modified)
        .unwrap_or_else(Timestamp::now);
    let stale = stale_after();
    for object in objects.iter().filter(|o| o.name != mine && o.regular) {
        let path = dir.join(&object.name);
        if is_stale(object, now, stale) {
            ops_shared::entry::warn(format!(
                "ignoring the stale lock {} (not refreshed for more than {}; its holder was killed \
                 or lost the network){}",
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
        let held = match crate::read_small(&path, 4096) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            read => read
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Holder>(&bytes).ok()),
        };
        match held {
            Some(held) if access == Access::Shared && !held.exclusive => {}
            Some(held) => return Ok(Conflict::With(Some(held.owner))),
            None => return Ok(Conflict::With(None)),
        }
    }
    Ok(Conflict::None)
}

fn is_stale(object: &Object, now: Timestamp, stale: Duration) -> bool {
    let Some(modified) = object.modified else {
        return false;
    };
    now.duration_since(modified)
        .try_into()
        .is_ok_and(|age: Duration| age > stale)
}
