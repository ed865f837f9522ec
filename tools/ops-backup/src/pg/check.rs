//! Reading database dumps back: verifying them, and restoring them into a
//! database (a scratch one for `ops-verify --restore-test`, the user's for
//! ops-restore) with row counts compared against the manifest.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use anyhow::{bail, Context};

use super::conn::{quote_ident, PgTarget};
use super::dump::{count_rows, DumpFormat, END_MARKER};
use super::tools;
use crate::archive::{Findings, Level};
use crate::artifact::CHUNK;
use crate::catalog;
use crate::hashing::HashingReader;
use crate::manifest::{Header, ManifestReader, Summary, Table};

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
    let file = match File::open(artifact) {
        Ok(file) => file,
        Err(err) => {
            findings.fail(format!(
                "cannot read artifact {}: {err}",
                artifact.display()
            ));
            return findings.close();
        }
    };
    let mut hashing = HashingReader::new(file);
    if level == Level::Full && format == DumpFormat::Plain {
        match decompressed_tail(&mut hashing) {
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
    crate::archive::compare_artifact(artifact, &manifest.summary, &sha256, bytes, &mut findings);
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
    command.arg("--list").arg(artifact);
    let mut running = tools::spawn(&mut command, "pg_restore")?;
    let mut listing = String::new();
    running.stdout()?.read_to_string(&mut listing)?;
    running
        .wait_with_status_text()
        .map_err(|e| anyhow::anyhow!("pg_restore cannot read the dump: {e}"))?;
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
            watch(psql.id());
            let fed = feed(artifact, psql.stdin());
            let status = psql.wait_with_status_text();
            unwatch(psql.id());
            interrupted_check()?;
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
            if options.jobs > 1 && !options.single_transaction {
                command.arg(format!("--jobs={}", options.jobs));
            } else {
                command.arg("--single-transaction");
            }
            command.arg(artifact);
            let mut restore = tools::spawn(&mut command, "pg_restore")?;
            watch(restore.id());
            let status = restore.wait_with_status_text();
            unwatch(restore.id());
            interrupted_check()?;
            status.map_err(|failure| anyhow::anyhow!("restore failed: {failure}"))
        }
    }
}

/// Decompresses the dump into psql's stdin.
fn feed(artifact: &Path, stdin: Option<std::process::ChildStdin>) -> io::Result<()> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    let file = File::open(artifact)?;
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, file))?;
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
pub fn restore_test(artifact: &Path, server: Option<&str>) -> Findings {
    let mut findings = Findings::default();
    if let Err(err) = try_restore_test(artifact, server, &mut findings) {
        findings.fail(format!("restore test: {err:#}"));
    }
    findings.close()
}

fn try_restore_test(
    artifact: &Path,
    server: Option<&str>,
    findings: &mut Findings,
) -> anyhow::Result<()> {
    let manifest = read_manifest(artifact)?;
    let format = DumpFormat::of(&manifest.header.format).unwrap_or(DumpFormat::Plain);
    let server = PgTarget::parse(server.unwrap_or(&manifest.header.source.location))?;
    let scratch = ScratchDatabase::create(&server, &manifest.header.id)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let options = RestoreOptions {
        single_transaction: format == DumpFormat::Plain,
        jobs,
    };
    restore_into(artifact, format, &scratch.target, &options)?;
    for problem in compare_counts(&scratch.target, &manifest.tables)? {
        findings.fail(problem);
    }
    findings.entries = manifest.tables.len() as u64;
    Ok(())
}

/// A database that exists only for the duration of a check.
pub struct ScratchDatabase {
    server: PgTarget,
    pub target: PgTarget,
}

impl ScratchDatabase {
    /// Creates `ops_verify_<id>_<pid>_<n>` on the server.
    ///
    /// Fails if the server cannot be reached or refuses CREATE DATABASE.
    pub fn create(server: &PgTarget, id: &str) -> anyhow::Result<Self> {
        handle_interrupts();
        let nanos = jiff::Timestamp::now().subsec_nanosecond();
        let short: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(30)
            .collect();
        let name = format!("ops_verify_{short}_{}_{nanos}", std::process::id()).to_lowercase();
        let maintenance = maintenance_target(server)?;
        let mut client = maintenance.connect()?;
        client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .map_err(|e| maintenance.query_error("creating a scratch database", &e))?;
        let scratch = ScratchDatabase {
            server: maintenance,
            target: server.with_dbname(&name),
        };
        SCRATCH
            .lock()
            .map(|mut names| names.push((scratch.server.clone(), name)))
            .ok();
        Ok(scratch)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        drop_database(&self.server, &self.target.dbname);
        if let Ok(mut names) = SCRATCH.lock() {
            names.retain(|(_, name)| *name != self.target.dbname);
        }
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
pub fn drop_database(maintenance: &PgTarget, name: &str) {
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
    if let Err(err) = dropped {
        ops_shared::entry::warn(format!(
            "could not drop scratch database {name} on {}: {err}; drop it by hand",
            maintenance.endpoint()
        ));
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static SCRATCH: Mutex<Vec<(PgTarget, String)>> = Mutex::new(Vec::new());

/// Whether Ctrl-C (or SIGTERM) arrived during a restore.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// After Ctrl-C, waits for the handler: it drops the scratch databases and
/// exits with 130. Returning an error instead raced it to an exit of 1,
/// before the databases were dropped.
fn interrupted_check() -> anyhow::Result<()> {
    while interrupted() {
        std::thread::park();
    }
    Ok(())
}

/// On Ctrl-C: stop the client programs, drop the scratch databases, exit.
fn handle_interrupts() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            for pid in CHILDREN.lock().map(|c| c.clone()).unwrap_or_default() {
                if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
            for (server, name) in SCRATCH.lock().map(|s| s.clone()).unwrap_or_default() {
                drop_database(&server, &name);
            }
            ops_shared::entry::error("interrupted; scratch databases dropped");
            // The one exit outside the entry helper: the main thread may be
            // blocked in a query for a long time, and the cleanup is done.
            std::process::exit(130);
        });
    });
}

fn watch(pid: u32) {
    if let Ok(mut children) = CHILDREN.lock() {
        children.push(pid);
    }
}

fn unwatch(pid: u32) {
    if let Ok(mut children) = CHILDREN.lock() {
        children.retain(|p| *p != pid);
    }
}
