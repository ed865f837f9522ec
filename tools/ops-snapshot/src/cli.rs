//! The command line of ops-snapshot. Parsing does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ops_shared::OutputArgs;

/// Deduplicated snapshots of data trees.
///
/// Files are cut into content-defined chunks (FastCDC), named by their
/// SHA-256, compressed with zstd and stored once in pack files; a file whose
/// size, mtime, ctime and inode match the previous snapshot is not read
/// again. A `snapshot` record is written for every snapshot made or listed.
/// The chunk index in REPO/index is a cache: delete it, or run
/// `rebuild-index`, and it is rebuilt from the packs.
#[derive(Debug, Parser)]
#[command(name = "ops-snapshot", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot a directory (or a file); the repository is created on first use.
    ///
    /// A path deleted (or replaced by something else) after it was listed is
    /// left out with a warning, and a file that changed while it was read is
    /// stored as read and marked changed, so the next snapshot reads it
    /// again. The snapshot is still recorded, its record counts them in
    /// `vanished` and `changed`, and the exit status stays 0, as ops-backup's
    /// for a file changed while it was read: what is gone is not lost, and a
    /// live directory's nightly snapshot does not fail its cron job.
    Create(CreateArgs),
    /// List the snapshots, oldest first.
    List(RepoArgs),
    /// Restore a snapshot (an id, a unique prefix of one, or `latest`) into a directory.
    Restore(RestoreArgs),
    /// Show what changed between two snapshots: added, removed, modified
    /// (content) and metadata (mode, owner, times) paths, as `diff` records.
    Diff(DiffArgs),
    /// Write a snapshot to stdout as a tar archive compressed with zstd
    /// (`tar --zstd -xf` extracts it).
    Export(ExportArgs),
    /// Remove data no snapshot needs, and repack packs that are mostly unused.
    Gc(GcArgs),
    /// Rebuild the chunk index from the packs.
    RebuildIndex(RepoArgs),
    /// Copy snapshots into another repository (a directory or a bucket,
    /// created on first use): only the chunks it lacks travel, as stored and
    /// checked; the manifest last, so the snapshot keeps its id. Snapshots
    /// it has already are skipped, so the copy can run from cron.
    Copy(CopyArgs),
    /// The key slots of an encrypted repository: list, add, remove. Each
    /// slot holds the repository's master key for one passphrase or age
    /// public key, so changing a password rewrites no data.
    #[command(subcommand)]
    Key(KeyCommand),
}

impl Command {
    /// The repository options every subcommand has.
    pub fn repo(&self) -> &Repo {
        match self {
            Command::Create(args) => &args.repo,
            Command::List(args)
            | Command::RebuildIndex(args)
            | Command::Key(KeyCommand::List(args)) => &args.repo,
            Command::Restore(args) => &args.repo,
            Command::Diff(args) => &args.repo,
            Command::Export(args) => &args.repo,
            Command::Gc(args) => &args.repo,
            Command::Copy(args) => &args.repo,
            Command::Key(KeyCommand::Add(args)) => &args.repo,
            Command::Key(KeyCommand::Remove(args)) => &args.repo,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the key slots (no key needed); `current` marks the one that
    /// opened the repository.
    List(RepoArgs),
    /// Add a key slot; the repository is opened with a key it has.
    Add(KeyAddArgs),
    /// Remove a key slot; not the one that opened the repository in this
    /// run, so never the last.
    Remove(KeyRemoveArgs),
}

#[derive(Debug, Args)]
pub struct KeyAddArgs {
    #[command(flatten)]
    pub repo: Repo,
    /// The new slot's passphrase, in the first line of this file (mode 0600)
    /// [default: asked twice on the terminal].
    #[arg(long, value_name = "FILE", conflicts_with = "recipient")]
    pub new_password_file: Option<PathBuf>,
    /// A slot for this age public key instead of a passphrase (repeatable:
    /// one slot any of their identities opens).
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    pub recipient: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// The slot: its id or a unique prefix, as `key list` shows it.
    pub id: String,
    #[command(flatten)]
    pub repo: Repo,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_field_names)] // `--repo` is the flag's name
pub struct Repo {
    /// The repository directory.
    #[arg(long, value_name = "REPO")]
    pub repo: Option<PathBuf>,
    /// How long to wait for another process holding the repository.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub lock_wait: Duration,
    #[command(flatten)]
    pub keys: ops_shared::keys::OpenArgs,
}

impl Repo {
    /// The repository, which every command but `restore` of a piped record needs.
    pub fn path(&self) -> Result<&std::path::Path, ops_shared::UsageError> {
        self.repo
            .as_deref()
            .ok_or_else(|| ops_shared::UsageError("give the repository with --repo REPO".into()))
    }
}

#[derive(Debug, Args)]
pub struct RepoArgs {
    #[command(flatten)]
    pub repo: Repo,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The directory or file to snapshot.
    pub source: PathBuf,
    #[command(flatten)]
    pub repo: Repo,
    /// The series name [default: the source's base name].
    #[arg(long)]
    pub name: Option<String>,
    /// Leave out paths matching GLOB (repeatable). A GLOB with a `/` matches the
    /// path relative to the source; one without matches a name at any depth.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Warn about paths that cannot be read and leave them out, instead of failing.
    #[arg(long)]
    pub skip_unreadable: bool,
    /// zstd level of a new repository's chunks, 1 to 19.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// Reader and compressor threads; 0 uses every core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Encrypt a new repository (recommended for anything off-site): its
    /// master key goes into a first key slot for the passphrase from
    /// OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND (or asked twice on the
    /// terminal), or for --recipient. An encrypted repository needs no
    /// flag afterwards, only its key.
    #[arg(long)]
    pub encrypt: bool,
    /// With --encrypt, the first key slot is for this age public key
    /// instead of a passphrase (repeatable); later runs need its identity.
    #[arg(long, value_name = "AGE_PUBLIC_KEY", requires = "encrypt")]
    pub recipient: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot: an id, a unique prefix, or `latest` [default: one
    /// snapshot record on stdin].
    pub snapshot: Option<String>,
    #[command(flatten)]
    pub repo: Repo,
    /// The directory to restore into (created; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Restore only this path of the snapshot (and what is under it).
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Replace the contents of a non-empty target.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The snapshots to copy: ids, unique prefixes or `latest` [default: the
    /// snapshot records on stdin, from any repository].
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub repo: Repo,
    /// The repository to copy into.
    #[arg(long, value_name = "REPO")]
    pub to: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    pub from: String,
    /// The newer snapshot.
    pub to: String,
    #[command(flatten)]
    pub repo: Repo,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The snapshot: an id, a unique prefix, or `latest`.
    pub snapshot: String,
    #[command(flatten)]
    pub repo: Repo,
    /// zstd level of the archive.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub repo: Repo,
    /// Repack until at most this share of the packs' bytes is unused.
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = parse_percent)]
    pub max_unused: f64,
    /// Say what would be removed and repacked; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ops_shared::duration::parse(text).map_err(|err| err.to_string())
}

/// `10%` or `10` as a percentage from 0 to 100.
fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(value) if (0.0..=100.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
    }
}
