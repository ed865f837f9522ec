//! Restores are all or nothing: a tree is written into a staging directory
//! beside its target and renamed into place only once it is complete, so a
//! failed restore leaves the target as it was.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::atomic::{self, with_suffix, TEMP_SUFFIX};

/// Where a restore goes, checked before anything is written.
pub struct Target {
    pub path: PathBuf,
    replace: bool,
}

impl Target {
    /// Checks `path`: missing or empty, or (with `force`) a directory whose
    /// contents will be replaced; its parent must exist.
    ///
    /// Fails, with what to do, when the target cannot be used.
    pub fn plan(path: &Path, force: bool) -> anyhow::Result<Self> {
        let replace = match fs::symlink_metadata(path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => {
                return Err(err).with_context(|| format!("cannot use target {}", path.display()))
            }
            Ok(meta) if !meta.is_dir() => {
                bail!("target {} exists and is not a directory", path.display())
            }
            Ok(_) => {
                let empty = fs::read_dir(path)?.next().is_none();
                if !empty && !force {
                    bail!(
                        "target {} is not empty; pass --force to replace its contents",
                        path.display()
                    );
                }
                !empty
            }
        };
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            bail!(
                "cannot restore to {}: {} does not exist",
                path.display(),
                parent.display()
            );
        }
        Ok(Target {
            path: path.to_owned(),
            replace,
        })
    }

    /// Runs `fill` on a new staging directory, then moves the result into
    /// place (replacing the old contents if planned so).
    ///
    /// Fails with `fill`'s error, after removing the staging directory.
    pub fn fill<T>(&self, fill: impl FnOnce(&Path) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let staging = with_suffix(&self.path, &format!(".{}{TEMP_SUFFIX}", std::process::id()));
        fs::create_dir(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
        let (undo, target) = (staging.clone(), self.path.display().to_string());
        let interrupt = crate::interrupt::on_interrupt(move || {
            let _ = fs::remove_dir_all(&undo);
            Some(format!("nothing was written to {target}"))
        });
        let filled = fill(&staging);
        drop(interrupt);
        let filled = match filled {
            Ok(filled) => filled,
            Err(err) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(err.context(format!("nothing was written to {}", self.path.display())));
            }
        };
        if self.replace {
            let old = with_suffix(
                &self.path,
                &format!(".{}.old{TEMP_SUFFIX}", std::process::id()),
            );
            fs::rename(&self.path, &old)?;
            fs::rename(&staging, &self.path)?;
            fs::remove_dir_all(&old).with_context(|| {
                format!("restored, but the old contents remain in {}", old.display())
            })?;
        } else {
            fs::rename(&staging, &self.path).with_context(|| {
                format!("cannot move the restored tree into {}", self.path.display())
            })?;
        }
        atomic::sync_dir(&self.path)?;
        Ok(filled)
    }
}
