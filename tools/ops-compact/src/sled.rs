//! Compacting a sled database: plan (measure), then rebuild and swap.
//!
//! The rebuild happens in a sibling directory while the old database stays
//! open and locked. The two directories are then exchanged in one
//! `renameat2(RENAME_EXCHANGE)`, so the original path always names a
//! complete database: the old one before the exchange, the new one (with
//! the same checksum) after it. Only then is the old copy removed.
//!
//! The copy is built in a directory only root can enter, and given the
//! owners and modes of the original before the exchange
//! ([`sleddb::Owners`]); the space it needs is checked and watched
//! ([`space`]). A copy that fails is removed.

mod space;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use ops_backup::sleddb::{self, Owners};
use ops_shared::atomic::{with_suffix, TEMP_SUFFIX};
use ops_shared::record::Compact;
use ops_shared::Record;

use crate::failpoint::failpoint;

/// What a compaction would do, measured before anything changes.
pub struct Plan {
    pub path: PathBuf,
    pub before_bytes: u64,
    pub live_bytes: u64,
    pub reclaimable_share: f64,
    pub rebuild: bool,
    pub reason: String,
}

/// Measures the database at `path`.
///
/// Fails if it is not a sled database, is in use, or cannot be read.
pub fn plan(path: &Path, min_reclaim: f64, force: bool) -> anyhow::Result<Plan> {
    let (db, contents) = sleddb::checksum(path, sleddb::open(path)?)?;
    let live_bytes = contents.bytes();
    drop(db);
    let before_bytes = sleddb::disk_usage(path);
    let reclaimable = before_bytes.saturating_sub(live_bytes);
    let share = if before_bytes == 0 {
        0.0
    } else {
        reclaimable as f64 * 100.0 / before_bytes as f64
    };
    let (rebuild, reason) = if force {
        (true, "--force".to_owned())
    } else if share >= min_reclaim {
        (
            true,
            format!("{share:.0}% reclaimable, at least --min-reclaim {min_reclaim}%"),
        )
    } else {
        (
            false,
            format!("{share:.0}% reclaimable, under --min-reclaim {min_reclaim}%"),
        )
    };
    Ok(Plan {
        path: path.to_owned(),
        before_bytes,
        live_bytes,
        reclaimable_share: share,
        rebuild,
        reason,
    })
}

impl Plan {
    /// The record for this plan when it is not carried out.
    pub fn record(&self, dry_run: bool) -> Compact {
        let action = match (dry_run, self.rebuild) {
            (true, true) => "would-rebuild",
            (_, false) => "skipped",
            (false, true) => "rebuilt",
        };
        let mut record = Compact {
            target: format!("sled:{}", self.path.display()),
            kind: "sled".into(),
            action: action.into(),
            before_bytes: self.before_bytes,
            after_bytes: if dry_run && self.rebuild {
                self.live_bytes
            } else {
                self.before_bytes
            },
            extra: serde_json::Map::new(),
        };
        record.annotate("live_bytes", self.live_bytes);
        record.annotate(
            "reclaimable_percent",
            (self.reclaimable_share * 10.0).round() / 10.0,
        );
        record.annotate("reason", &self.reason);
        record
    }

    /// Rebuilds and swaps; the record with the bytes after.
    ///
    /// Fails, leaving the original database in place and untouched, if the
    /// rebuilt copy does not match it.
    pub fn execute(&self, keep_old: bool, owners: &Owners) -> anyhow::Result<Compact> {
        let started = Instant::now();
        let path = &self.path;
        let sibling = with_suffix(path, &format!(".compact{TEMP_SUFFIX}"));
        if sibling.exists() {
            fs::remove_dir_all(&sibling)
                .with_context(|| format!("cannot remove the leftover {}", sibling.display()))?;
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        space::check(path, dir, self.live_bytes)?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&sibling)
            .with_context(|| format!("cannot create {}", sibling.display()))?;
        let mut copy = Leftover(Some(&sibling));
        let old = sleddb::open(path)?;
        failpoint("opened");
        let watch = space::Watch::start(path, &sibling, dir, owners.clone());
        let copied = sleddb::copy(path, old, &sibling);
        watch.stop();
        let (old, contents, copied) = copied.with_context(|| {
            format!(
                "cannot write the rebuilt copy of {}; the copy was removed, and the database                  is as it was",
                path.display()
            )
        })?;
        let checksum = contents.checksum;
        if copied != checksum {
            bail!(
                "the rebuilt copy of {} does not match it; nothing was changed",
                path.display()
            );
        }
        owners.restore(&sibling)?;
        failpoint("rebuilt");
        copy.0 = None;
        exchange(path, &sibling)?;
        failpoint("swapped");
        drop(old);
        let after_bytes = sleddb::disk_usage(path);
        if keep_old {
            let stamp = jiff::Timestamp::now().strftime("%Y%m%d_%H%M%S");
            let kept = with_suffix(path, &format!(".old-{stamp}"));
            fs::rename(&sibling, &kept)?;
            owners.restore(&kept)?;
        } else {
            fs::remove_dir_all(&sibling).with_context(|| {
                format!(
                    "compacted, but the old copy remains in {}",
                    sibling.display()
                )
            })?;
        }
        let mut record = self.record(false);
        record.after_bytes = after_bytes;
        record.annotate("checksum", checksum);
        record.annotate(
            "seconds",
            (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        );
        Ok(record)
    }
}

/// A copy that did not make it, removed when dropped.
struct Leftover<'a>(Option<&'a Path>);

impl Drop for Leftover<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// Swaps two directories atomically and makes the swap durable.
fn exchange(a: &Path, b: &Path) -> anyhow::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .with_context(|| format!("cannot swap {} with its rebuilt copy", a.display()))?;
    ops_shared::atomic::sync_dir(a)?;
    Ok(())
}
