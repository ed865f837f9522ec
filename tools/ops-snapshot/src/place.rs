//! Whether a path is an ops-snapshot repository or inside one: the places
//! tools that delete or rewrite plain files (`ops-prune --files`,
//! `ops-compact --files`) must refuse. Old packs are live data, and a
//! compressed or pruned `config` makes the repository unreadable.
//!
//! A repository is known by its shape (`snapshots/` and `packs/`) as well
//! as by its config, so one whose config is missing or damaged (a crash
//! during its first create, or someone's mistake) is still protected.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::RepoError;
use crate::repo::Repo;

/// Whether `dir` is a repository (see the module docs).
pub fn is_repository(dir: &Path) -> bool {
    let is_dir = |name: &str| fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_dir());
    if is_dir("snapshots") && is_dir("packs") {
        return true;
    }
    match Repo::read_config(dir) {
        Ok(_) | Err(RepoError::TooNew { .. }) => true,
        Err(_) => false,
    }
}

/// The repository `path` is, or is inside: `path` itself or the nearest
/// directory above it that is one (symlinks resolved).
pub fn repository_of(path: &Path) -> Option<PathBuf> {
    let resolved = fs::canonicalize(path).ok().or_else(|| {
        let parent = fs::canonicalize(path.parent()?).ok()?;
        Some(parent.join(path.file_name()?))
    })?;
    resolved
        .ancestors()
        .find(|dir| is_repository(dir))
        .map(Path::to_owned)
}
