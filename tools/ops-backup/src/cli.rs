//! The command line of ops-backup. Parsing does no I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ops_shared::keys::SealArgs;
use ops_shared::OutputArgs;

/// Back up directories, files and PostgreSQL databases into zstd-compressed,
/// SHA-256-checked artifacts, and list the backups in a directory.
///
/// A directory or file becomes `<name>_<YYYYMMDD_HHMMSS>.tar.zst` (UTC),
/// which extracts with `tar --zstd -xf`; a database becomes a consistent
/// pg_dump, `<db>_<YYYYMMDD_HHMMSS>.sql.zst` (restores with `zstd -dc FILE |
/// psql`) or `.dump` (pg_restore). Each has a manifest and a sha256sum
/// checksum file beside it. A sled database becomes `<name>_<...>.sled.zst`
/// (every tree, with sled's checksum). A `backup` record is written on stdout for every
/// backup made or listed.
#[derive(Debug, Parser)]
#[command(name = "ops-backup", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up a directory or a file into a backup directory.
    Create(CreateArgs),
    /// List the backups in directories, oldest first, rebuilt from the directories alone.
    List(ListArgs),
    /// Copy the backups whose records arrive on stdin to another directory
    /// or bucket, each checked by its checksum on arrival; those already
    /// there are skipped.
    Copy(CopyArgs),
    /// Make an age key pair for encrypted backups: the identity goes to a
    /// file that only its owner can read, the public key (the recipient)
    /// to stdout. Hosts that back up need only the public key.
    Keygen(KeygenArgs),
    /// Archive one WAL file in PLACE/wal/: what PostgreSQL's archive_command
    /// runs, `archive_command = 'ops-backup wal-push %p --to PLACE'`. The
    /// file is compressed and checksummed and appears only once complete; the
    /// same file pushed again succeeds, other content under an archived name
    /// is refused. Any failure exits non-zero, so PostgreSQL keeps the file
    /// and tries again. Quiet on success.
    WalPush(WalPushArgs),
    /// Fetch one WAL file from PLACE/wal/, checked against its checksum:
    /// what restore_command runs, `restore_command = 'ops-backup wal-get %f
    /// %p --from PLACE'`. A file the archive does not have exits 1 without a
    /// word, as recovery expects; a damaged one fails loudly.
    WalGet(WalGetArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The directory or file to back up; a database, postgres://USER@HOST:PORT/DB
    /// (`postgres:` alone takes everything from PGHOST, PGDATABASE, ... and ~/.pgpass);
    /// or a sled database, sled:PATH (a sled directory is also recognised by itself).
    pub source: PathBuf,
    /// The backup directory to write into (created, owner-only, if missing; its parent must exist).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// The series name used in the artifact name [default: the source's base name].
    /// A series holds one source: a second source of the same base name
    /// (svcA/data after svcB/data) is refused until it gets a name of its own.
    #[arg(long, value_parser = parse_name)]
    pub name: Option<String>,
    /// zstd compression level, 1 (fastest) to 19 (smallest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// Compression threads; 0 uses every core (one for sled, whose reading is
    /// the bottleneck).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Leave out paths matching GLOB (repeatable). A GLOB with a `/` matches the
    /// path relative to the source; one without matches a name at any depth.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Warn about files that cannot be read and leave them out, instead of failing.
    #[arg(long)]
    pub skip_unreadable: bool,
    /// For databases: plain SQL compressed with zstd (.sql.zst), or pg_dump's
    /// custom format stored as is (.dump, for pg_restore -j).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    #[command(flatten)]
    pub seal: SealArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The file to write the new identity (secret key) to, mode 0600; an
    /// existing file is never overwritten. Its public key is printed on
    /// stdout, ready to be a --recipients-file.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct WalPushArgs {
    /// The WAL file to archive (%p): a segment, a .partial or .backup file,
    /// or a timeline's .history file.
    pub file: PathBuf,
    /// The backup directory or s3://BUCKET/PREFIX holding the archive.
    #[arg(long, value_name = "PLACE")]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct WalGetArgs {
    /// The name of the WAL file wanted (%f).
    pub name: String,
    /// Where to write it (%p).
    pub dest: PathBuf,
    /// The backup directory or s3://BUCKET/PREFIX holding the archive.
    #[arg(long, value_name = "PLACE")]
    pub from: PathBuf,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The directory or s3://BUCKET/PREFIX to copy into (a directory is
    /// created, owner-only, if missing; a bucket must exist).
    #[arg(long, value_name = "PLACE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Backup directories to list.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Plain,
    Custom,
}

fn parse_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err("use letters, digits, '.', '_' and '-' only, not starting with '.'".into())
    }
}
