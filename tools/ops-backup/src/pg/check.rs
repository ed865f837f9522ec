//! Reading database dumps back: verifying them, and restoring them into a
//! database (a scratch one for `ops-verify --restore-test`, the user's for
//! ops-restore) with row counts compared against the manifest.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};

use super::conn::{quote_ident, PgTarget};
use super::dump::{count_rows, DumpFormat, END_MARKER};
use super::tools;
use crate::artifact::CHUNK;
use crate::catalog;
use crate::check::{Findings, Level};
use crate::hashing::HashingReader;
use crate::manifest::{Header, ManifestReader, Summary, Table};
use ops_shared::progress::Counting;

/// A database backup's manifest, read whole and checked against its seal.
pub struct DumpManifest {
    pub header: Header,
    pub tables: Vec<Table>,
    pub summary: Summary,
}

/// Reads the manifest beside a dump artifact.
///
/// Fails if it is missing or damaged, or is not a database dump's.
pub fn read_manifest(artifact: &Path) -> anyhow::Result<DumpManifest> {
    let path = catalog::manifest_of(artifact)?;
    let mut reader = ManifestReader::open(&path)?;
    let header = reader.header.clone();
    let tables = reader.tables()?;
    let summary = reader.finish()?;
    if DumpFormat::of(&header.format).is_none() {
        bail!(
            "{} is not a database dump (format {})",
            artifact.display(),
            header.format
        );
    }
    Ok(DumpManifest {
        header,
        tables,
        summary,
    })
}

/// Verifies a dump: checksum (quick); also the whole stream and that the
/// dump is complete (full).
pub fn verify(artifact: &Path, level: Level) -> Findings {
    let mut findings = Findings::default();
    let manifest = match read_manifest(artifact) {
        Ok(manifest) => manifest,
        Err(err) => {
            findings.fail(format!("{err:#}"));
            return findings.close();
        }
    };
    let format = DumpFormat::of(&manifest.header.format).unwrap_or(DumpFormat::Plain);
    let file = match ops_storage::open(artifact) {
        Ok(file) => file,
        Err(err) => {
            findings.fail(format!(
                "cannot read artifact {}: {err}",
                artifact.display()
            ));
            return findings.close();
        }
    };
    let mut hashing = HashingReader::new(Counting(file));
    if level == Level::Full && format == DumpFormat::Plain {
        let tail = crate::sealed::plaintext(artifact, &mut hashing)
            .and_then(|mut plain| decompressed_tail(&mut plain));
        match tail {
            Ok((raw_bytes, tail)) => {
                if raw_bytes != manifest.summary.raw_bytes {
                    findings.fail(format!(
                        "dump is {raw_bytes} bytes uncompressed, the manifest says {}",
                        manifest.summary.raw_bytes
                    ));
                }
                if !String::from_utf8_lossy(&tail).contains(END_MARKER) {
                    findings.fail("dump is incomplete: no end-of-dump marker".into());
                }
            }
            Err(err) => findings.fail(format!("decompression failed: {err}")),
        }
    }
    if let Err(err) = io::copy(&mut hashing, &mut io::sink()) {
        findings.fail(format!(
            "cannot read artifact {}: {err}",
            artifact.display()
        ));
    }
    let (sha256, bytes) = hashing.finish();
    findings.artifact_sha256 = Some(sha256.clone());
    crate::check::compare_artifact(artifact, &manifest.summary, &sha256, bytes, &mut findings);
    if level == Level::Full && format == DumpFormat::Custom && findings.ok() {
        if let Err(err) = check_table_of_contents(artifact, &manifest.tables) {
            findings.fail(format!("{err:#}"));
        }
    }
    findings.entries = manifest.tables.len() as u64;
    findings.close()
}

fn decompressed_tail(input: &mut impl Read) -> io::Result<(u64, Vec<u8>)> {
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, input))?;
    let mut buffer = vec![0; CHUNK];
    let mut total = 0u64;
    let mut tail = Vec::new();
    loop {
        let n = decoder.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        tail.extend_from_slice(&buffer[..n]);
        if tail.len() > 1024 {
            tail.drain(..tail.len() - 1024);
        }
    }
    Ok((total, tail))
}

/// `pg_restore --list` reads the whole table of contents and names the data
/// of every table in the manifest.
fn check_table_of_contents(artifact: &Path, tables: &[Table]) -> anyhow::Result<()> {
    let mut command = std::process::Command::new("pg_restore");
    command.arg("--list");
    let (mut running, fed) = pg_restore_on(&mut command, artifact)?;
    let mut listing = String::new();
    running.stdout()?.read_to_string(&mut listing)?;
    running
        .wait_with_status_text()
        .map_err(|e| anyhow::anyhow!("pg_restore cannot read the dump: {e}"))?;
    fed.join()
        .map_err(|_| anyhow::anyhow!("feeding pg_restore failed"))?
        .with_context(|| format!("reading {} failed", artifact.display()))?;
    let missing: Vec<String> = tables
        .iter()
        .filter(|t| t.kind == "table")
        .filter(|t| !listing.contains(&format!(" TABLE DATA {} {} ", t.schema, t.name)))
        .map(Table::qualified)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the dump's table of contents lacks the data of {}",
            missing.join(", ")
        );
    }
    Ok(())
}

/// How a dump goes into a database.
pub struct RestoreOptions {
    /// All or nothing (plain always; custom unless `jobs` > 1).
    pub single_transaction: bool,
    /// Parallel pg_restore jobs for custom dumps.
    pub jobs: u32,
}

/// Restores a dump into the database `target` (which must exist).
///
/// Fails with psql's or pg_restore's own message when the restore fails;
/// with `single_transaction` nothing of it remains then.
pub fn restore_into(
    artifact: &Path,
    format: DumpFormat,
    target: &PgTarget,
    options: &RestoreOptions,
) -> anyhow::Result<()> {
    match format {
        DumpFormat::Plain => {
            let mut command = target.command("psql");
            command.args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-o",
                "/dev/null",
                "--no-password",
            ]);
            command.arg("--single-transaction");
            let mut psql = tools::spawn_with(&mut command, "psql", true)?;
            let fed = feed(artifact, psql.stdin());
            let status = psql.wait_with_status_text();
            ops_shared::interrupt::stop_if_interrupted();
            if let Err(failure) = status {
                bail!("restore failed: {failure}");
            }
            fed.with_context(|| format!("reading {} failed", artifact.display()))
        }
        DumpFormat::Custom => {
            let mut command = target.command("pg_restore");
            command
                .args(["--exit-on-error", "--no-password"])
                .arg(format!("--dbname={}", target.dbname));
            // --jobs needs the file itself: not a bucket's, not an encrypted one.
            let local = !ops_storage::is_remote(artifact)
                && !crate::sealed::is_sealed(&artifact.to_string_lossy());
            if options.jobs > 1 && !options.single_transaction && local {
                command.arg(format!("--jobs={}", options.jobs));
            } else {
                command.arg("--single-transaction");
            }
            let (mut restore, fed) = pg_restore_on(&mut command, artifact)?;
            let status = restore.wait_with_status_text();
            ops_shared::interrupt::stop_if_interrupted();
            status.map_err(|failure| anyhow::anyhow!("restore failed: {failure}"))?;
            fed.join()
                .map_err(|_| anyhow::anyhow!("feeding pg_restore failed"))?
                .with_context(|| format!("reading {} failed", artifact.display()))
        }
    }
}

/// Starts pg_restore on a custom dump: a local one by its path (which
/// `--jobs` needs), one in a bucket streamed to its stdin by a thread.
fn pg_restore_on(
    command: &mut std::process::Command,
    artifact: &Path,
) -> anyhow::Result<(tools::Running, std::thread::JoinHandle<io::Result<()>>)> {
    let encrypted = crate::sealed::is_sealed(&artifact.to_string_lossy());
    if !ops_storage::is_remote(artifact) && !encrypted {
        command.arg(artifact);
        let running = tools::spawn(command, "pg_restore")?;
        return Ok((running, std::thread::spawn(|| Ok(()))));
    }
    let mut running = tools::spawn_with(command, "pg_restore", true)?;
    let stdin = running.stdin();
    let artifact = artifact.to_owned();
    let fed = std::thread::spawn(move || {
        let stored = ops_storage::open(&artifact)?;
        let (Some(mut stdin), mut dump) = (stdin, crate::sealed::plaintext(&artifact, stored)?)
        else {
            return Ok(());
        };
        match io::copy(&mut dump, &mut stdin) {
            // pg_restore --list stops reading after the table of contents.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            done => done.map(drop),
        }
    });
    Ok((running, fed))
}

/// Decompresses the dump into psql's stdin.
fn feed(artifact: &Path, stdin: Option<std::process::ChildStdin>) -> io::Result<()> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    let plain = crate::sealed::plaintext(artifact, Counting(ops_storage::open(artifact)?))?;
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, plain))?;
    let mut buffer = vec![0; CHUNK];
    loop {
        let n = decoder.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        if stdin.write_all(&buffer[..n]).is_err() {
            // psql stopped; its exit status says why.
            return Ok(());
        }
    }
}

/// Per-table differences between the manifest and the restored database.
///
/// Fails if the restored database cannot be read.
pub fn compare_counts(target: &PgTarget, expected: &[Table]) -> anyhow::Result<Vec<String>> {
    let mut client = target.connect()?;
    let actual: BTreeMap<String, u64> = count_rows(target, &mut client)?
        .into_iter()
        .map(|t| (t.qualified(), t.rows))
        .collect();
    let mut problems = Vec::new();
    for table in expected {
        match actual.get(&table.qualified()) {
            None => problems.push(format!("{}: missing after restore", table.qualified())),
            Some(rows) if *rows != table.rows => problems.push(format!(
                "{}: {} rows in the backup, {rows} after restore",
                table.qualified(),
                table.rows
            )),
            Some(_) => {}
        }
    }
    let known: Vec<String> = expected.iter().map(Table::qualified).collect();
    for name in actual.keys().filter(|name| !known.contains(name)) {
        problems.push(format!("{name}: after restore but not in the backup"));
    }
    Ok(problems)
}

/// Restores into a fresh scratch database on `server`, compares every
/// table's row count, and drops the database again, also on failure or
/// Ctrl-C. Every problem is a finding.
///
/// `Err` when the test could not run at all, for reasons that are not the
/// backup's: the server cannot be reached or refuses the login or CREATE
/// DATABASE, or psql or pg_restore is missing.
pub fn restore_test(artifact: &Path, server: Option<&str>) -> Result<Findings, NotTested> {
    let mut findings = Findings::default();
    let manifest = match read_manifest(artifact) {
        Ok(manifest) => manifest,
        Err(err) => {
            findings.fail(format!("restore test: {err:#}"));
            return Ok(findings.close());
        }
    };
    let not_tested = |err: anyhow::Error| NotTested(format!("{err:#}"));
    let server = PgTarget::parse(server.unwrap_or(&manifest.header.source.location))
        .map_err(|err| not_tested(err.into()))?;
    let scratch = ScratchDatabase::create(&server, &manifest.header.id).map_err(not_tested)?;
    let format = DumpFormat::of(&manifest.header.format).unwrap_or(DumpFormat::Plain);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let options = RestoreOptions {
        single_transaction: format == DumpFormat::Plain,
        jobs,
    };
    let restored = restore_into(artifact, format, &scratch.target, &options)
        .and_then(|()| compare_counts(&scratch.target, &manifest.tables));
    match restored {
        Ok(problems) => problems.into_iter().for_each(|p| findings.fail(p)),
        Err(err) if err.is::<tools::ToolMissing>() => return Err(not_tested(err)),
        Err(err) => findings.fail(format!("restore test: {err:#}")),
    }
    findings.entries = manifest.tables.len() as u64;
    Ok(findings.close())
}

/// Why a restore test did not run; see [`restore_test`].
#[derive(Debug)]
pub struct NotTested(pub String);

/// What marks a scratch database as ours, and the advisory lock space
/// that says its creator still runs.
const SCRATCH_PREFIX: &str = "ops_verify_";
const SCRATCH_COMMENT: &str = "ops-verify --restore-test scratch database";

/// A database that exists only for the duration of a check.
///
/// Its name starts with `ops_verify_` and it carries a comment saying what
/// it is; its creator holds an advisory lock on its name for as long as it
/// runs. A run killed with `kill -9` cannot drop it, so every new scratch
/// database first drops the marked ones whose lock is free: their creator
/// is gone, on whichever host it ran.
pub struct ScratchDatabase {
    server: PgTarget,
    pub target: PgTarget,
    holder: postgres::Client,
    _drop_on_interrupt: ops_shared::interrupt::Guard,
}

impl ScratchDatabase {
    /// Creates `ops_verify_<id>_<pid>_<n>` on the server, after dropping
    /// stale scratch databases of killed runs.
    ///
    /// Fails if the server cannot be reached or refuses CREATE DATABASE.
    pub fn create(server: &PgTarget, id: &str) -> anyhow::Result<Self> {
        let nanos = jiff::Timestamp::now().subsec_nanosecond();
        let short: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(30)
            .collect();
        let name = format!("{SCRATCH_PREFIX}{short}_{}_{nanos}", std::process::id()).to_lowercase();
        let maintenance = maintenance_target(server)?;
        let mut holder = maintenance.connect()?;
        drop_stale_scratch(&maintenance, &mut holder);
        let fail = |e: postgres::Error| maintenance.query_error("creating a scratch database", &e);
        holder
            .execute(
                "SELECT pg_advisory_lock(hashtext($1), hashtext($2))",
                &[&SCRATCH_PREFIX, &name],
            )
            .map_err(fail)?;
        holder
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .map_err(fail)?;
        let drop_on_interrupt = {
            let (maintenance, name) = (maintenance.clone(), name.clone());
            ops_shared::interrupt::on_interrupt(move || {
                drop_database(&maintenance, &name)
                    .then(|| format!("scratch database {name} dropped"))
            })
        };
        let comment = format!(
            "COMMENT ON DATABASE {} IS '{SCRATCH_COMMENT} of pid {}'",
            quote_ident(&name),
            std::process::id()
        );
        let mut scratch = ScratchDatabase {
            server: maintenance.clone(),
            target: server.with_dbname(&name),
            holder,
            _drop_on_interrupt: drop_on_interrupt,
        };
        scratch.holder.batch_execute(&comment).map_err(fail)?;
        Ok(scratch)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        drop_database(&self.server, &self.target.dbname);
    }
}

/// Drops the marked scratch databases whose creator is gone; problems are
/// warnings (the check itself can still run).
fn drop_stale_scratch(maintenance: &PgTarget, client: &mut postgres::Client) {
    let names: Vec<String> = match client.query(
        "SELECT d.datname FROM pg_database d \
         JOIN pg_shdescription c ON c.objoid = d.oid AND c.classoid = 'pg_database'::regclass \
         WHERE starts_with(d.datname, $1) AND starts_with(c.description, $2)",
        &[&SCRATCH_PREFIX, &SCRATCH_COMMENT],
    ) {
        Ok(rows) => rows.iter().map(|row| row.get(0)).collect(),
        Err(err) => {
            ops_shared::entry::warn(
                maintenance.query_error("looking for stale scratch databases", &err),
            );
            return;
        }
    };
    for name in names {
        let free = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                &[&SCRATCH_PREFIX, &name],
            )
            .is_ok_and(|row| row.get::<_, bool>(0));
        if !free {
            continue;
        }
        if drop_database(maintenance, &name) {
            ops_shared::entry::warn(format!(
                "dropped scratch database {name} left by a restore test that was killed"
            ));
        }
        let _ = client.execute(
            "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))",
            &[&SCRATCH_PREFIX, &name],
        );
    }
}

/// The server's maintenance database (`postgres`, else `template1`).
///
/// Fails if neither accepts a connection.
pub fn maintenance_target(server: &PgTarget) -> anyhow::Result<PgTarget> {
    let postgres = server.with_dbname("postgres");
    match postgres.connect() {
        Ok(_) => Ok(postgres),
        Err(super::PgError::NoSuchDatabase { .. }) => Ok(server.with_dbname("template1")),
        Err(err) => Err(err.into()),
    }
}

/// Drops a database, disconnecting its sessions; failures are warnings.
/// Whether it is gone.
pub fn drop_database(maintenance: &PgTarget, name: &str) -> bool {
    let dropped = maintenance
        .connect()
        .map_err(|e| e.to_string())
        .and_then(|mut client| {
            client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(name)
                ))
                .map_err(|e| super::conn::describe(&e))
        });
    if let Err(err) = &dropped {
        ops_shared::entry::warn(format!(
            "could not drop database {name} on {}: {err}; drop it by hand",
            maintenance.endpoint()
        ));
    }
    dropped.is_ok()
}
