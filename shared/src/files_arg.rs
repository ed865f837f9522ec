//! `--files DIR|GLOB|PATH`: the paths one argument names, for the tools
//! that act on plain files (ops-prune, ops-compact).
//!
//! How an argument is read (a directory walked in name order, a glob's
//! matches, one existing path) and the messages for a missing path or a bad
//! glob are the same everywhere; what each tool refuses and takes is its own
//! ([`FileRules`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use walkdir::{DirEntry, WalkDir};

use crate::UsageError;

/// What a tool refuses and takes among the paths an argument names. Each
/// method fails to refuse the whole argument, or says whether to take the
/// path.
pub trait FileRules {
    /// For "--files ARG matches no ...": what the tool acts on.
    const WHAT: &'static str;

    /// The argument is a directory, before it is walked.
    fn directory(&mut self, arg: &str, dir: &Path) -> anyhow::Result<()>;

    /// An entry under that directory (the directory itself first).
    fn walked(&mut self, arg: &str, entry: &DirEntry) -> anyhow::Result<bool>;

    /// The argument names one existing path.
    fn named(&mut self, arg: &str, path: &Path) -> anyhow::Result<bool>;

    /// A path the argument's glob matched.
    fn matched(&mut self, arg: &str, path: &Path) -> anyhow::Result<bool>;
}

/// The paths `arg` names that `rules` take, in name order.
///
/// Fails (a usage error) when `arg` names nothing that exists, is a bad
/// glob, or `rules` refuse it; fails when a directory cannot be read. A glob
/// that matches nothing to take is a warning.
pub fn expand<R: FileRules>(arg: &str, rules: &mut R) -> anyhow::Result<Vec<PathBuf>> {
    let path = Path::new(arg);
    let mut taken = Vec::new();
    if path.is_dir() {
        rules.directory(arg, path)?;
        for entry in WalkDir::new(path).sort_by_file_name() {
            let entry = entry.with_context(|| format!("cannot read --files {arg}"))?;
            if rules.walked(arg, &entry)? {
                taken.push(entry.into_path());
            }
        }
        return Ok(taken);
    }
    if !arg.contains(['*', '?', '[']) {
        if fs::symlink_metadata(path).is_err() {
            return Err(UsageError(format!("--files {arg}: no such file or directory")).into());
        }
        if rules.named(arg, path)? {
            taken.push(path.to_owned());
        }
        return Ok(taken);
    }
    let matches =
        glob::glob(arg).map_err(|err| UsageError(format!("--files {arg}: bad glob: {err}")))?;
    for found in matches {
        let found = found.with_context(|| format!("cannot read --files {arg}"))?;
        if rules.matched(arg, &found)? {
            taken.push(found);
        }
    }
    if taken.is_empty() {
        crate::entry::warn(format!("--files {arg} matches no {}", R::WHAT));
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes every plain file; refuses nothing.
    struct Files;

    impl FileRules for Files {
        const WHAT: &'static str = "file";

        fn directory(&mut self, _arg: &str, _dir: &Path) -> anyhow::Result<()> {
            Ok(())
        }

        fn walked(&mut self, _arg: &str, entry: &DirEntry) -> anyhow::Result<bool> {
            Ok(entry.file_type().is_file())
        }

        fn named(&mut self, _arg: &str, _path: &Path) -> anyhow::Result<bool> {
            Ok(true)
        }

        fn matched(&mut self, _arg: &str, path: &Path) -> anyhow::Result<bool> {
            Ok(path.is_file())
        }
    }

    #[test]
    fn a_directory_a_glob_and_a_path_name_their_files_in_order() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("d");
        fs::create_dir_all(dir.join("sub"))?;
        for name in ["b.log", "a.log", "sub/c.log"] {
            fs::write(dir.join(name), name)?;
        }
        let text = |p: &Path| p.display().to_string();
        let walked = expand(&text(&dir), &mut Files)?;
        assert_eq!(
            walked,
            [dir.join("a.log"), dir.join("b.log"), dir.join("sub/c.log")]
        );
        let globbed = expand(&text(&dir.join("*.log")), &mut Files)?;
        assert_eq!(globbed, [dir.join("a.log"), dir.join("b.log")]);
        let named = expand(&text(&dir.join("b.log")), &mut Files)?;
        assert_eq!(named, [dir.join("b.log")]);
        Ok(())
    }

    #[test]
    fn a_missing_path_and_a_bad_glob_are_usage_errors() {
        let missing = expand("/nonexistent/ops-files-arg", &mut Files).unwrap_err();
        assert_eq!(
            missing
                .downcast_ref::<UsageError>()
                .map(ToString::to_string),
            Some("--files /nonexistent/ops-files-arg: no such file or directory".to_owned())
        );
        let bad = expand("/tmp/[", &mut Files).unwrap_err();
        assert!(bad.downcast_ref::<UsageError>().is_some(), "{bad:#}");
    }
}
