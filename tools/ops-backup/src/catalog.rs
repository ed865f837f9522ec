//! The catalog: a backup directory read back into `backup` records.
//!
//! Everything is rebuilt from the directory alone. For one backup `<id>`:
//!
//! - `<id>.<format>`: the artifact (`data_20261121_120000.tar.zst`)
//! - `<id>.<format>.sha256`: its checksum in `sha256sum` format
//! - `<id>.manifest.jsonl`: the manifest; a backup exists once this exists
//! - `<id>.verify.json`: the last verification result, if any
//!
//! Deleting in the reverse order (manifest first) means nothing half-deleted
//! is ever listed.
//!
//! A backup directory may be writable by others, and records come from
//! pipes: an id, artifact name or parent read from a manifest or a record
//! becomes a path only once it has the documented shape (one path component,
//! `<name>_<YYYYMMDD>_<HHMMSS>[_N]`, artifact `<id>.<format>`), and a
//! manifest counts only if it agrees with its own file name. Anything else
//! is refused ([`Refused`]), never followed out of the directory.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use ops_shared::atomic::{self, is_temp};
use ops_shared::{Backup, Source, Verification};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::manifest::{self, Header, ManifestError, Summary};

/// The longest id we accept: with the longest suffix it stays a legal file name.
const MAX_ID_LEN: usize = 230;

/// A name or manifest that does not have the shape we write: planted or
/// edited by someone else, never used as a path.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what}; refused, nothing was done with it. Someone who can write there may have \
     planted or edited it: inspect it, and remove it by hand if it is not yours"
)]
pub struct Refused {
    pub what: String,
}

fn refused(what: String) -> Refused {
    Refused { what }
}

/// Checks that `id` has the shape of a backup id,
/// `<name>_<YYYYMMDD>_<HHMMSS>` with an optional `_<N>`, where the name is
/// letters, digits, `.`, `_` and `-` and does not start with `.`.
///
/// Fails, saying what is wrong, for anything else (`..`, `/`, ...).
pub fn check_id(id: &str) -> Result<(), Refused> {
    let fail = || {
        refused(format!(
            "{id:?} is not a backup id (<name>_<YYYYMMDD>_<HHMMSS>[_N], \
             letters, digits, '.', '_', '-')"
        ))
    };
    let safe = !id.starts_with('.')
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    let attempt = id
        .rsplit_once('_')
        .filter(|(_, n)| is_digits(n, 1..=6))
        .is_some_and(|(head, _)| is_stamped(head));
    if id.len() <= MAX_ID_LEN && safe && (is_stamped(id) || attempt) {
        Ok(())
    } else {
        Err(fail())
    }
}

/// `<name>_<YYYYMMDD>_<HHMMSS>`.
fn is_stamped(text: &str) -> bool {
    match text.rsplitn(3, '_').collect::<Vec<_>>().as_slice() {
        [time, date, name] => is_digits(time, 6..=6) && is_digits(date, 8..=8) && !name.is_empty(),
        _ => false,
    }
}

fn is_digits(text: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&text.len()) && text.bytes().all(|c| c.is_ascii_digit())
}

/// Checks that a format is one or more lowercase words joined by `.`
/// (`tar.zst`, `dump`).
pub fn check_format(format: &str) -> Result<(), Refused> {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if format.len() <= 16 && format.split('.').all(word) {
        Ok(())
    } else {
        Err(refused(format!("{format:?} is not an artifact format")))
    }
}

/// The artifact's file name of a backup: `<id>.<format>`, once both have
/// their shape.
///
/// Fails if either does not.
pub fn artifact_name(id: &str, format: &str) -> Result<String, Refused> {
    check_id(id)?;
    check_format(format)?;
    Ok(format!("{id}.{format}"))
}

/// Checks a record before any path is made from it: id, parent and format
/// of their shape, and its path naming the artifact `<id>.<format>`.
///
/// Fails, saying which field is wrong.
pub fn check_record(backup: &Backup) -> Result<(), Refused> {
    let name = artifact_name(&backup.id, &backup.format)?;
    if let Some(parent) = &backup.parent {
        check_id(parent)?;
    }
    if backup.path.file_name() != Some(OsStr::new(&name)) {
        return Err(refused(format!(
            "backup {} has the path {}, which is not its artifact {name}",
            backup.id,
            backup.path.display()
        )));
    }
    Ok(())
}

/// Reads a manifest's header and summary ([`manifest::read_outline`]) and
/// checks that it is one of ours: id, artifact and parent of their shape,
/// and the file named after the id.
///
/// Fails if the manifest cannot be read, is damaged, or is refused.
pub fn read_manifest(path: &Path) -> Result<(Header, Summary), Error> {
    let shown = path.display();
    let (header, summary) = manifest::read_outline(path).map_err(|err| match err {
        ManifestError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidData => {
            Error::Refused(refused(format!("manifest {shown}: {source}")))
        }
        err => err.into(),
    })?;
    check_id(&header.id).map_err(|r| refused(format!("manifest {shown}: its id {}", r.what)))?;
    let artifact = artifact_name(&header.id, &header.format)
        .map_err(|r| refused(format!("manifest {shown}: {}", r.what)))?;
    if header.artifact != artifact {
        return Err(refused(format!(
            "manifest {shown} names the artifact {:?}, not {artifact}",
            header.artifact
        ))
        .into());
    }
    if let Some(parent) = &header.parent {
        check_id(parent)
            .map_err(|r| refused(format!("manifest {shown}: its parent {}", r.what)))?;
    }
    let own = format!("{}{}", header.id, manifest::SUFFIX);
    if path.file_name() != Some(OsStr::new(&own)) {
        return Err(refused(format!(
            "manifest {shown} describes backup {}, whose manifest is {own}",
            header.id
        ))
        .into());
    }
    Ok((header, summary))
}

/// The suffix of a persisted verification result.
pub const VERIFY_SUFFIX: &str = ".verify.json";

/// The suffix of the `sha256sum` checksum file beside an artifact.
pub const CHECKSUM_SUFFIX: &str = ".sha256";

/// The artifact id for a series at a time: `<name>_<YYYYMMDD_HHMMSS>`, with
/// `_2`, `_3`, ... for the second and later backups in the same second.
pub fn backup_id(name: &str, time: Timestamp, attempt: u32) -> String {
    let stamp = time.strftime("%Y%m%d_%H%M%S");
    if attempt <= 1 {
        format!("{name}_{stamp}")
    } else {
        format!("{name}_{stamp}_{attempt}")
    }
}

/// A series name made safe for a file name: letters, digits, `.`, `_`, `-`.
pub fn series_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches('.');
    if name.is_empty() {
        "backup".to_owned()
    } else {
        name.to_owned()
    }
}

/// The manifest path of the backup `id` in `dir`.
pub fn manifest_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{}", manifest::SUFFIX))
}

/// The checksum file of an artifact.
pub fn checksum_path(artifact: &Path) -> PathBuf {
    atomic::with_suffix(artifact, CHECKSUM_SUFFIX)
}

/// The manifest that describes an artifact: found by reading the manifests
/// of its directory whose id the artifact's name starts with.
///
/// Fails if the artifact has no manifest, or the manifest found is refused
/// ([`read_manifest`]) or names another artifact.
pub fn manifest_of(artifact: &Path) -> Result<PathBuf, Error> {
    let dir = parent_dir(artifact);
    let name = artifact
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or_default();
    let mut id = name;
    while let Some((stem, _ext)) = id.rsplit_once('.') {
        let candidate = manifest_path(dir, stem);
        if check_id(stem).is_ok() && is_object(&candidate) {
            let (header, _) = read_manifest(&candidate)?;
            if header.artifact != name {
                return Err(refused(format!(
                    "manifest {} describes {}, not {name}",
                    candidate.display(),
                    header.artifact
                ))
                .into());
            }
            return Ok(candidate);
        }
        id = stem;
    }
    Err(Error::NoManifest {
        artifact: artifact.to_owned(),
        manifest: manifest_path(dir, id),
    })
}

/// The `backup` record of one artifact, from the manifest beside it
/// ([`manifest_of`]); its path is `artifact` as given.
pub fn record_of(artifact: &Path) -> Result<Backup, Error> {
    let (header, summary) = manifest::read_outline(&manifest_of(artifact)?)?;
    let mut backup = record(parent_dir(artifact), &header, &summary);
    backup.path = artifact.to_owned();
    Ok(backup)
}

/// The `backup` record a manifest describes.
pub fn record(dir: &Path, header: &Header, summary: &Summary) -> Backup {
    Backup {
        id: header.id.clone(),
        name: header.name.clone(),
        time: header.time,
        path: dir.join(&header.artifact),
        source: header.source.clone(),
        format: header.format.clone(),
        mode: header.mode.clone(),
        parent: header.parent.clone(),
        bytes: summary.bytes,
        sha256: summary.sha256.clone(),
        extra: serde_json::Map::new(),
    }
}

/// What makes two backups of one series backups of the same thing: kind and
/// location; for a database, the server and database, not the role it was
/// dumped as nor whether the local server was reached by socket or TCP.
pub fn source_key(source: &Source) -> String {
    if source.kind != "postgres" {
        return format!("{}:{}", source.kind, source.location);
    }
    let rest = source
        .location
        .split_once("://")
        .map_or(source.location.as_str(), |(_, rest)| rest);
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    // `/DB?host=/SOCKET&port=N` (a local socket) or `HOST:PORT/DB`.
    let (host, port, db) = if let Some(socket) = rest.strip_prefix('/') {
        let (db, query) = socket.split_once('?').unwrap_or((socket, ""));
        let port = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("port="))
            .unwrap_or_default();
        ("localhost", port, db)
    } else {
        let (endpoint, db) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = endpoint.rsplit_once(':').unwrap_or((endpoint, ""));
        let local = matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]");
        (if local { "localhost" } else { host }, port, db)
    };
    format!("postgres:{host}:{port}/{db}")
}

/// The series among `backups` (of one directory) that hold backups of more
/// than one source, with those sources: one job's backups would count for
/// the other's in retention and health.
pub fn mixed_series(backups: &[Backup]) -> Vec<(String, Vec<String>)> {
    let mut series: BTreeMap<&str, BTreeMap<String, &str>> = BTreeMap::new();
    for backup in backups {
        series
            .entry(&backup.name)
            .or_default()
            .insert(source_key(&backup.source), &backup.source.location);
    }
    series
        .into_iter()
        .filter(|(_, sources)| sources.len() > 1)
        .map(|(name, sources)| {
            let shown: BTreeSet<&str> = sources.into_values().collect();
            (
                name.to_owned(),
                shown.into_iter().map(str::to_owned).collect(),
            )
        })
        .collect()
}

/// The error to report for a series [`mixed_series`] found.
pub fn mixed_series_message(dir: &Path, name: &str, sources: &[String]) -> String {
    format!(
        "{}: series {name} holds backups of {} sources ({}): retention and health cannot \
         tell them apart. Back each source up with its own --name, and sort out the \
         backups already there by hand",
        dir.display(),
        sources.len(),
        sources.join(", ")
    )
}

/// Checks that the series `name` in `dir` holds no backup of another
/// source, before a backup of `source` joins it. Sources of the same base
/// name (`svcA/data`, `svcB/data`) must not share a series by default:
/// `--keep-last 1` would keep one service's backup and delete the other's,
/// and health would see the series fresh while one job is dead. As with a
/// pgBackRest stanza, a series belongs to one source.
///
/// Fails (a usage error) if it holds another source's backups, or `dir`
/// cannot be read.
pub fn check_series_source(dir: &Path, name: &str, source: &Source) -> Result<(), Error> {
    let (backups, _) = list(dir)?;
    let key = source_key(source);
    let Some(other) = backups
        .iter()
        .find(|b| b.name == name && source_key(&b.source) != key)
    else {
        return Ok(());
    };
    Err(Error::MixedSeries(format!(
        "series {name} in {} holds backups of {} ({}); {} is another source and would share \
         its retention and health. Give it a series of its own with --name (for example \
         --name {}); nothing was written",
        dir.display(),
        other.source.location,
        other.id,
        source.location,
        suggested_name(name, source)
    )))
}

/// A series name for a second source: its parent directory's name first.
fn suggested_name(name: &str, source: &Source) -> String {
    let parent = Path::new(&source.location)
        .parent()
        .and_then(Path::file_name)
        .map(|p| p.to_string_lossy().into_owned());
    match parent {
        Some(parent) if source.kind != "postgres" => series_name(&format!("{parent}-{name}")),
        _ => series_name(&format!("{name}-2")),
    }
}

/// What `list` found besides backups: reported on stderr, never listed.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// One line per problem, for people.
    pub warnings: Vec<String>,
    /// Temporary files of interrupted runs.
    pub temp_files: Vec<PathBuf>,
    /// Artifacts without a manifest.
    pub orphans: Vec<PathBuf>,
    /// Uploads to a bucket that never finished (killed runs, or runs going on).
    pub unfinished: Vec<ops_storage::Unfinished>,
    /// Manifests that are not ours ([`Refused`]): an error, not a warning.
    pub refused: Vec<String>,
}

/// What a directory without backups is.
#[derive(Debug, PartialEq, Eq)]
pub enum Emptiness {
    /// One our tools have written to (it has their lock file).
    BackupDirectory,
    /// Nothing in it at all.
    Empty,
    /// Files of something else: `n` entries, none of them ours.
    Foreign(usize),
}

impl Emptiness {
    /// Why a list of this directory found nothing, and what to do.
    pub fn explain(&self, dir: &Path) -> String {
        match self {
            Emptiness::BackupDirectory => format!("no backups in {} (yet)", dir.display()),
            Emptiness::Empty => format!(
                "{} is empty: no backup has been made there; \
                 `ops-backup create SOURCE --to {}` makes the first",
                dir.display(),
                dir.display()
            ),
            Emptiness::Foreign(n) => format!(
                "{} is not a backup directory: none of its {n} entries is a backup; \
                 give the --to directory of `ops-backup create`",
                dir.display()
            ),
        }
    }
}

/// Tells a backup directory that holds no backups from an empty or foreign one.
pub fn emptiness(dir: &Path) -> Emptiness {
    let Ok(objects) = ops_storage::list(dir) else {
        return Emptiness::Empty;
    };
    // A file on disk, a prefix of lock objects in a bucket.
    if objects
        .iter()
        .any(|o| o.name == ops_shared::lock::LOCK_FILE)
    {
        return Emptiness::BackupDirectory;
    }
    match objects.len() {
        0 => Emptiness::Empty,
        n => Emptiness::Foreign(n),
    }
}

/// Whether a regular file or object is at `path`.
fn is_object(path: &Path) -> bool {
    matches!(ops_storage::stat(path), Ok(Some(object)) if object.regular)
}

/// The backups in `dir`, oldest first, each with its last verification.
///
/// Fails if `dir` cannot be read; damaged manifests and stray files are
/// reported in the returned leftovers.
pub fn list(dir: &Path) -> Result<(Vec<Backup>, Leftovers), Error> {
    let mut leftovers = Leftovers::default();
    let mut backups = Vec::new();
    let objects = ops_storage::list(dir).map_err(|source| {
        Error::io(
            format!("cannot read backup directory {}", dir.display()),
            source,
        )
    })?;
    let present: HashSet<PathBuf> = objects
        .iter()
        .filter(|object| object.regular)
        .map(|object| dir.join(&object.name))
        .collect();
    let names: Vec<PathBuf> = objects
        .into_iter()
        .map(|object| dir.join(object.name))
        .collect();
    let mut claimed = HashSet::new();
    for path in &names {
        let name = path.file_name().unwrap_or_default();
        if is_temp(name) {
            leftovers.temp_files.push(path.clone());
            leftovers.warnings.push(format!(
                "{}: temporary file left by an interrupted run; not a backup, safe to delete",
                path.display()
            ));
            continue;
        }
        if !name.to_string_lossy().ends_with(manifest::SUFFIX) {
            continue;
        }
        match read_manifest(path) {
            Ok((header, summary)) => {
                let mut backup = record(dir, &header, &summary);
                if !present.contains(&backup.path) {
                    leftovers.warnings.push(format!(
                        "{}: manifest without its artifact {}",
                        path.display(),
                        backup.path.display()
                    ));
                }
                if let Some(verification) = last_verification(&backup) {
                    ops_shared::Record::annotate(&mut backup, "verify", verification);
                }
                claimed.insert(backup.path.clone());
                if header.encryption.is_some() {
                    claimed.insert(manifest::sealed_path(path));
                }
                backups.push(backup);
            }
            Err(Error::Refused(err)) => leftovers.refused.push(err.to_string()),
            Err(err) => leftovers.warnings.push(err.to_string()),
        }
    }
    for path in &names {
        let name = path.to_string_lossy();
        let looks_like_artifact =
            name.ends_with(".zst") || name.ends_with(".dump") || name.ends_with(".age");
        if looks_like_artifact && !claimed.contains(path) && !is_temp(path.as_os_str()) {
            leftovers.orphans.push(path.clone());
            leftovers.warnings.push(format!(
                "{}: artifact without a manifest; not listed as a backup",
                path.display()
            ));
        }
    }
    note_unfinished(dir, &mut leftovers);
    backups.sort_by(ops_shared::ids::compare_backups);
    Ok((backups, leftovers))
}

/// Adds the unfinished uploads in `dir` (a bucket) to `leftovers`.
fn note_unfinished(dir: &Path, leftovers: &mut Leftovers) {
    match ops_storage::unfinished(dir) {
        Ok(unfinished) => {
            for upload in &unfinished {
                leftovers.warnings.push(format!(
                    "{}: an upload that never finished{}; not a backup (its run was killed, or \
                 still goes on); ops-health --fix aborts it once it is old",
                    dir.join(&upload.name).display(),
                    upload
                        .started
                        .map_or(String::new(), |time| format!(" (started {time})"))
                ));
            }
            leftovers.unfinished = unfinished;
        }
        // Credentials that may only write backups need not see this.
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {}
        Err(err) => leftovers
            .warnings
            .push(format!("cannot list unfinished uploads: {err}")),
    }
}

#[derive(Serialize, Deserialize)]
struct StoredVerification {
    /// The artifact checksum that was verified.
    sha256: String,
    /// The latest result, of whatever level.
    verify: Verification,
    /// The latest result of each level (quick, full, restore), so a quick
    /// check does not hide when the last restore test ran. Files written
    /// before it existed hold only `verify`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    levels: BTreeMap<String, Verification>,
}

impl StoredVerification {
    /// The stored results of this very artifact, if any.
    fn of(backup: &Backup) -> Option<Self> {
        let bytes = ops_storage::read_small(&verification_path(backup), 1 << 20).ok()?;
        let mut stored: StoredVerification = serde_json::from_slice(&bytes).ok()?;
        if stored.levels.is_empty() {
            let latest = stored.verify.clone();
            stored.levels.insert(latest.level.clone(), latest);
        }
        (stored.sha256 == backup.sha256).then_some(stored)
    }
}

fn verification_path(backup: &Backup) -> PathBuf {
    parent_dir(&backup.path).join(format!("{}{VERIFY_SUFFIX}", backup.id))
}

/// Checks the `sha256sum` file beside an artifact: one line naming the
/// artifact with its SHA-256, so that `sha256sum -c` passes where we do.
/// Returns what is wrong, if anything.
pub fn checksum_file_problem(artifact: &Path, sha256: &str) -> Option<String> {
    let path = checksum_path(artifact);
    let name = artifact.file_name()?.to_string_lossy();
    let fix = format!(
        "sha256sum -c would fail; if the artifact verifies otherwise, rewrite it with: \
         echo '{sha256}  {name}' > {}",
        path.display()
    );
    let mut text = Vec::new();
    let read = ops_storage::open(&path)
        .and_then(|file| io::Read::read_to_end(&mut io::Read::take(file, 4096), &mut text));
    if let Err(err) = read {
        return Some(format!(
            "its checksum file {} cannot be read ({err}); {fix}",
            path.display()
        ));
    }
    let line = text.strip_suffix(b"\n").unwrap_or(&text);
    let good = [format!("{sha256}  {name}"), format!("{sha256} *{name}")];
    if good.iter().any(|g| g.as_bytes() == line) {
        None
    } else {
        Some(format!(
            "its checksum file {} does not say \"{sha256}  {name}\"; {fix}",
            path.display()
        ))
    }
}

/// Persists a verification result beside the artifact, only where it
/// belongs: the record has its shape and its directory holds its manifest,
/// which names the same artifact.
///
/// Fails if the record or its manifest does not say so, or the directory
/// cannot be written.
pub fn save_verification(backup: &Backup, verification: &Verification) -> io::Result<()> {
    check_record(backup).map_err(io::Error::other)?;
    let manifest = manifest_path(parent_dir(&backup.path), &backup.id);
    let (header, _) = read_manifest(&manifest).map_err(io::Error::other)?;
    if backup.path.file_name() != Some(OsStr::new(&header.artifact)) {
        return Err(io::Error::other(format!(
            "{} describes another artifact",
            manifest.display()
        )));
    }
    let mut levels = StoredVerification::of(backup).map_or_else(BTreeMap::new, |s| s.levels);
    levels.insert(verification.level.clone(), verification.clone());
    let stored = StoredVerification {
        sha256: backup.sha256.clone(),
        verify: verification.clone(),
        levels,
    };
    let json = serde_json::to_vec(&stored)?;
    if ops_storage::is_remote(&backup.path) {
        return ops_storage::write(&verification_path(backup), ops_storage::Mode::Replace, json);
    }
    let mut file = atomic::AtomicFile::replace(&verification_path(backup))?;
    io::Write::write_all(file.file(), &json)?;
    let like = manifest.file_name().unwrap_or_default();
    file.take_metadata_of(like, 0o600)?;
    file.commit()
}

/// The last persisted verification of this very artifact, if any.
pub fn last_verification(backup: &Backup) -> Option<Verification> {
    StoredVerification::of(backup).map(|stored| stored.verify)
}

/// The latest persisted verification of each level (quick, full,
/// restore) of this very artifact.
pub fn verification_history(backup: &Backup) -> BTreeMap<String, Verification> {
    StoredVerification::of(backup).map_or_else(BTreeMap::new, |stored| stored.levels)
}

/// Deletes a backup: the manifest first, so from then on it is not listed,
/// then its artifact, checksum file and verification result. The caller
/// holds the directory's exclusive lock. Returns the bytes freed.
///
/// Deletes nothing, and fails, unless the record has its shape
/// ([`check_record`]) and the manifest beside `backup.path` still describes this very backup (same artifact, checksum and time): a
/// stale or edited record never deletes anything else. Fails on I/O errors;
/// if that happens after the manifest went, what is left is reported by
/// `list` as an artifact without a manifest.
pub fn remove(backup: &Backup) -> Result<u64, Error> {
    check_record(backup)?;
    let dir = parent_dir(&backup.path);
    let manifest = manifest_path(dir, &backup.id);
    let (header, summary) = read_manifest(&manifest)?;
    let named = backup.path.file_name() == Some(OsStr::new(&header.artifact));
    if !named || summary.sha256 != backup.sha256 || header.time != backup.time {
        return Err(Error::Changed {
            manifest,
            artifact: backup.path.clone(),
        });
    }
    let artifact = dir.join(&header.artifact);
    let mut freed = 0;
    let mut delete = |path: &Path| -> Result<(), Error> {
        let cannot = |err| Error::io(format!("cannot remove {}", path.display()), err);
        let size = ops_storage::stat(path)
            .map_err(cannot)?
            .map_or(0, |o| o.size);
        ops_storage::delete(path).map_err(cannot)?;
        freed += size;
        Ok(())
    };
    // The manifest goes first (durably, as every delete): a backup is gone
    // before its artifact is.
    delete(&manifest)?;
    if header.encryption.is_some() {
        delete(&manifest::sealed_path(&manifest))?;
    }
    delete(&artifact)?;
    delete(&checksum_path(&artifact))?;
    delete(&verification_path(backup))?;
    Ok(freed)
}

/// The directory a path is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_name_and_utc_second() {
        let time: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        assert_eq!(backup_id("data", time, 1), "data_20261121_120000");
        assert_eq!(backup_id("data", time, 2), "data_20261121_120000_2");
    }

    #[test]
    fn only_ids_of_our_shape_are_accepted() {
        for good in [
            "data_20261121_120000",
            "data_20261121_120000_10",
            "a.b-c_20261121_120000",
        ] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in [
            "../other/data_20261121_120000",
            "/etc/data_20261121_120000",
            ".data_20261121_120000",
            "data_20261121_120000/..",
            "data",
            "_20261121_120000",
            "data_2026112_120000",
            "",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        assert!(check_format("tar.zst").is_ok());
        assert!(check_format("../zst").is_err());
        assert!(check_format("").is_err());
    }

    #[test]
    fn a_database_dumped_as_another_role_is_the_same_source() {
        let source = |kind: &str, location: &str| Source {
            kind: kind.into(),
            location: location.into(),
        };
        let app = source("postgres", "postgres://app@db:5432/shop");
        let admin = source("postgres", "postgres://postgres@db:5432/shop");
        assert_eq!(source_key(&app), source_key(&admin));
        let other = source("postgres", "postgres://app@db2:5432/shop");
        assert_ne!(source_key(&app), source_key(&other));
        let socket = source(
            "postgres",
            "postgres://app@/shop?host=/run/postgresql&port=5432",
        );
        let tcp = source("postgres", "postgres://app@127.0.0.1:5432/shop");
        assert_eq!(source_key(&socket), source_key(&tcp));
        let other_port = source("postgres", "postgres://app@127.0.0.1:5433/shop");
        assert_ne!(source_key(&socket), source_key(&other_port));
        assert_ne!(
            source_key(&source("dir", "/a/data")),
            source_key(&source("dir", "/b/data"))
        );
    }

    #[test]
    fn series_names_are_safe_file_names() {
        assert_eq!(series_name("my data/ü"), "my-data--");
        assert_eq!(series_name("..."), "backup");
        assert_eq!(series_name("reddit_cluster"), "reddit_cluster");
    }
}
