//! Restores are all or nothing: a tree is written into a staging directory
//! beside its target and renamed into place only once it is complete, so a
//! failed restore leaves the target as it was.
//!
//! The target's parent may be writable by others, who could rename the
//! staging directory away and put a link to `/etc` in its place. So the
//! staging directory is created private (0700) and filled through its
//! descriptor (`/proc/self/fd/N`, which no rename can redirect), and it is
//! moved into place only if its name still names it. Its top directory
//! then gets the owner, group and mode recorded at backup time, or those
//! of the directory it replaces, or the umask's.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::atomic::{self, with_suffix, TEMP_SUFFIX};
use crate::owner::{self, Recorded};

/// Where a restore goes, checked before anything is written.
pub struct Target {
    pub path: PathBuf,
    replace: bool,
    /// The directory already there, empty or to be replaced.
    existing: Option<Recorded>,
}

impl Target {
    /// Checks `path`: missing or empty, or (with `force`) a directory whose
    /// contents will be replaced; its parent must exist.
    ///
    /// Fails, with what to do, when the target cannot be used.
    pub fn plan(path: &Path, force: bool) -> anyhow::Result<Self> {
        let found = fs::symlink_metadata(path);
        let existing = found
            .as_ref()
            .ok()
            .filter(|meta| meta.is_dir())
            .map(Recorded::of);
        let replace = match found {
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
            existing,
        })
    }

    /// Runs `fill` on a new staging directory (a path through its
    /// descriptor), gives its top the owner and mode `top` records (see
    /// the module docs), then moves the result into place (replacing the
    /// old contents if planned so).
    ///
    /// Fails with `fill`'s error, after removing the staging directory, or
    /// when the staging directory was moved or replaced meanwhile.
    pub fn fill<T>(
        &self,
        top: Option<&Recorded>,
        fill: impl FnOnce(&Path) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let staging = with_suffix(&self.path, &format!(".{}{TEMP_SUFFIX}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let (undo, target) = (staging.clone(), self.path.display().to_string());
        let interrupt = crate::interrupt::on_interrupt(move || {
            let _ = fs::remove_dir_all(&undo);
            Some(format!("nothing was written to {target}"))
        });
        let filled = anchor(&staging).and_then(|anchor| {
            let inside = through(&anchor).unwrap_or_else(|| staging.clone());
            let filled = fill(&inside).map_err(|err| shown(err, &inside, &staging))?;
            if !names(&staging, &anchor) {
                bail!(
                    "the staging directory {} was moved or replaced while restoring (is \
                     someone else writing in its parent?)",
                    staging.display()
                );
            }
            self.give_top(&anchor, top).with_context(|| {
                format!("cannot set the owner and mode of {}", staging.display())
            })?;
            Ok(filled)
        });
        drop(interrupt);
        let filled = match filled {
            Ok(filled) => filled,
            Err(err) => {
                if fs::symlink_metadata(&staging).is_ok_and(|meta| meta.is_dir()) {
                    let _ = fs::remove_dir_all(&staging);
                }
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

    /// Gives the staging directory its top's owner, mode and time: as
    /// recorded, else as the directory it replaces, else the umask's.
    fn give_top(&self, anchor: &File, top: Option<&Recorded>) -> io::Result<()> {
        let Some(top) = top.or(self.existing.as_ref()) else {
            return set_mode(anchor, 0o777 & !umask());
        };
        let as_root = owner::as_root();
        owner::restore(anchor, Some(top.uid), Some(top.gid), top.mode, as_root)?;
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(top.mtime.max(0) as u64);
        anchor.set_times(fs::FileTimes::new().set_accessed(time).set_modified(time))
    }
}

/// Opens the staging directory just created, checking it is still the
/// private, empty directory this process made.
fn anchor(staging: &Path) -> anyhow::Result<File> {
    let failed = || format!("cannot open the staging directory {}", staging.display());
    let anchor = owner::open_dir(staging).with_context(failed)?;
    let meta = anchor.metadata().with_context(failed)?;
    let ours = meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o077 == 0;
    if !ours || fs::read_dir(staging).with_context(failed)?.next().is_some() {
        bail!(
            "the staging directory {} was replaced as it was created (is someone else \
             writing in its parent?)",
            staging.display()
        );
    }
    Ok(anchor)
}

/// A path to `dir` through its descriptor, where /proc is mounted.
fn through(dir: &File) -> Option<PathBuf> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let meta = fs::metadata(&path).ok()?;
    let same = dir.metadata().ok()?;
    (meta.ino() == same.ino() && meta.dev() == same.dev()).then_some(path)
}

/// Whether the name `path` still names the directory `dir`.
fn names(path: &Path, dir: &File) -> bool {
    match (fs::symlink_metadata(path), dir.metadata()) {
        (Ok(named), Ok(opened)) => named.ino() == opened.ino() && named.dev() == opened.dev(),
        _ => false,
    }
}

/// `err` naming `staging` where it names the descriptor path `inside`.
fn shown(err: anyhow::Error, inside: &Path, staging: &Path) -> anyhow::Error {
    let (inside, staging) = (inside.to_string_lossy(), staging.to_string_lossy());
    let text = format!("{err:#}");
    if inside == staging || !text.contains(inside.as_ref()) {
        return err;
    }
    anyhow::anyhow!(text.replace(inside.as_ref(), staging.as_ref()))
}

fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// This process's umask.
fn umask() -> u32 {
    use rustix::fs::Mode;
    let mask = rustix::process::umask(Mode::from_raw_mode(0o022));
    rustix::process::umask(mask);
    mask.bits()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn the_top_gets_the_recorded_mode_and_time() {
        let tmp = tempfile::tempdir().unwrap();
        let to = tmp.path().join("restored");
        let top = Recorded {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            mode: 0o750,
            mtime: 1_700_000_000,
        };
        let target = Target::plan(&to, false).unwrap();
        target
            .fill(Some(&top), |dir| Ok(fs::write(dir.join("f"), b"x")?))
            .unwrap();
        assert_eq!(mode(&to), 0o750);
        assert_eq!(fs::metadata(&to).unwrap().mtime(), 1_700_000_000);
        assert_eq!(fs::read(to.join("f")).unwrap(), b"x");
    }

    #[test]
    fn a_directory_replaced_or_filled_keeps_its_own_mode_when_none_is_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let to = tmp.path().join("restored");
        fs::create_dir(&to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o751)).unwrap();
        let target = Target::plan(&to, false).unwrap();
        target.fill(None, |_| Ok(())).unwrap();
        assert_eq!(mode(&to), 0o751);
    }

    #[test]
    fn a_staging_directory_swapped_for_a_link_lets_nothing_through() {
        let tmp = tempfile::tempdir().unwrap();
        let (to, victim) = (tmp.path().join("restored"), tmp.path().join("etc"));
        fs::create_dir(&victim).unwrap();
        let target = Target::plan(&to, false).unwrap();
        let failed = target
            .fill(None, |dir| {
                let staging = fs::read_dir(tmp.path())
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| p.to_string_lossy().ends_with(TEMP_SUFFIX))
                    .unwrap();
                fs::rename(&staging, tmp.path().join("moved")).unwrap();
                std::os::unix::fs::symlink(&victim, &staging).unwrap();
                Ok(fs::write(dir.join("shadow"), b"planted")?)
            })
            .unwrap_err();
        assert!(
            format!("{failed:#}").contains("moved or replaced"),
            "{failed:#}"
        );
        assert_eq!(
            fs::read_dir(&victim).unwrap().count(),
            0,
            "written through the link"
        );
        assert!(fs::symlink_metadata(&to).is_err(), "the target was created");
    }
}
