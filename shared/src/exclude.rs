//! `--exclude GLOB`, the same for every tool that walks a tree.

use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::UsageError;

/// `--exclude` patterns: a pattern with a `/` matches the path relative to
/// the source, one without matches a name at any depth.
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Excludes {
    /// Fails with a [`UsageError`] naming the first invalid pattern.
    pub fn new(patterns: &[String]) -> anyhow::Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for pattern in patterns {
            let invalid = |err| UsageError(format!("invalid --exclude pattern {pattern:?}: {err}"));
            if pattern.contains('/') {
                let pattern = pattern
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .trim_end_matches('/');
                paths.add(
                    GlobBuilder::new(pattern)
                        .literal_separator(true)
                        .build()
                        .map_err(invalid)?,
                );
            } else {
                names.add(Glob::new(pattern).map_err(invalid)?);
            }
        }
        Ok(Excludes {
            names: names.build()?,
            paths: paths.build()?,
        })
    }

    /// Whether `relative` (a path relative to the source) is left out.
    pub fn matches(&self, relative: &Path) -> bool {
        relative
            .file_name()
            .is_some_and(|name| self.names.is_match(name))
            || self.paths.is_match(relative)
    }
}
