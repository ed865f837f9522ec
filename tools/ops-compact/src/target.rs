//! What a TARGET argument names, decided by looking at it: the one place
//! ops-compact dispatches on the kind of thing it compacts.

use std::path::{Path, PathBuf};

use ops_backup::{pg, sleddb};
use ops_shared::UsageError;

use crate::cli::{Cli, Kind};

/// A thing ops-compact knows how to compact.
#[derive(Debug)]
pub enum Target {
    /// A PostgreSQL database: the location as given (URL or `postgres:`).
    Postgres(String),
    /// A sled database directory.
    Sled(PathBuf),
    /// Plain files: the --files arguments.
    Files(Vec<String>),
    /// An ops-snapshot repository, compacted by its own gc.
    Repo(PathBuf),
}

impl Target {
    /// The target for people, any password redacted.
    pub fn shown(&self) -> String {
        match self {
            Target::Postgres(location) => ops_shared::redact::redact(location),
            Target::Sled(path) | Target::Repo(path) => path.display().to_string(),
            Target::Files(args) => args.join(" "),
        }
    }

    /// The target of a command line.
    ///
    /// Fails with a usage error when TARGET is neither a database URL nor a
    /// sled database, or names a directory that --files is meant for.
    pub fn of(cli: &Cli) -> Result<Target, UsageError> {
        let target = match &cli.target {
            None if cli.repo.is_some() => Target::Repo(cli.repo.clone().unwrap_or_default()),
            None => Target::Files(cli.files.clone()),
            Some(text) if pg::is_postgres(text) => Target::Postgres(text.clone()),
            Some(text) => match sleddb::sled_path(text) {
                Some(path) => Target::Sled(path),
                None => return Err(unknown(text)),
            },
        };
        cli.check(target.kind())?;
        Ok(target)
    }

    pub fn kind(&self) -> Kind {
        match self {
            Target::Postgres(_) => Kind::Postgres,
            Target::Sled(_) => Kind::Sled,
            Target::Files(_) => Kind::Files,
            Target::Repo(_) => Kind::Repo,
        }
    }
}

fn unknown(text: &str) -> UsageError {
    let hint = if Path::new(text).is_dir() {
        format!("; to compress the files in it, use --files {text}")
    } else if Path::new(text).exists() {
        format!("; to compress it, use --files {text}")
    } else {
        String::new()
    };
    UsageError(format!(
        "{text}: not a sled database or a PostgreSQL URL (sled:PATH, postgres://USER@HOST/DB, \
         postgres:){hint}"
    ))
}
