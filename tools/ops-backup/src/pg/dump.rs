//! `ops-backup create postgres://...`: a consistent pg_dump with exact row
//! counts.
//!
//! Our own connection opens a `REPEATABLE READ, READ ONLY` transaction and
//! exports its snapshot; pg_dump dumps that snapshot while the same
//! transaction counts every table's rows, so the manifest's counts describe
//! exactly what the dump holds. pg_dump's output streams through zstd and
//! SHA-256 in-process; nothing uncompressed touches the disk.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::thread;

use anyhow::{bail, Context};
use ops_shared::keys::Encryption;
use ops_shared::{Backup, Source};

use super::conn::{quote_ident, PgTarget};
use super::tools::{self, PgDump};
use crate::artifact::{ArtifactWriter, CHUNK};
use crate::manifest::{DatabaseInfo, Summary, Table};
use crate::pending::{PendingBackup, Plan};

/// The end-of-dump marker pg_dump writes last in a plain dump.
pub const END_MARKER: &str = "-- PostgreSQL database dump complete";

/// pg_dump's output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// SQL, compressed by us: `.sql.zst`, restorable with `zstd -dc | psql`.
    Plain,
    /// pg_dump's custom format, stored as is: `.dump`, for `pg_restore`.
    Custom,
}

impl DumpFormat {
    /// The artifact format name, which is also its file extension.
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Plain => "sql.zst",
            DumpFormat::Custom => "dump",
        }
    }

    /// The format of an artifact format name, if it is a database dump.
    pub fn of(format: &str) -> Option<Self> {
        match format.strip_suffix(crate::sealed::SUFFIX).unwrap_or(format) {
            "sql.zst" => Some(DumpFormat::Plain),
            "dump" => Some(DumpFormat::Custom),
            _ => None,
        }
    }
}

/// What to dump and how.
pub struct Request {
    pub target: PgTarget,
    pub to: PathBuf,
    pub name: Option<String>,
    pub format: DumpFormat,
    pub level: i32,
    pub threads: u32,
    pub encryption: Option<Encryption>,
}

/// Where the dump goes: compressed (plain SQL) or as it is (custom).
fn artifact_writer(
    request: &Request,
    artifact: Box<dyn ops_storage::Upload>,
    seal: Option<&Encryption>,
) -> io::Result<ArtifactWriter> {
    match request.format {
        DumpFormat::Plain => {
            ArtifactWriter::compressed(artifact, request.level, request.threads, seal)
        }
        DumpFormat::Custom => ArtifactWriter::plain(artifact, seal),
    }
}

/// Dumps the database into `request.to`; returns the backup record.
///
/// Fails if the server cannot be reached, pg_dump is missing or too old,
/// pg_dump fails or dies, or writing fails (a full disk); in every case no
/// artifact is left under a final name.
pub fn dump(request: &Request) -> anyhow::Result<Backup> {
    let target = &request.target;
    // Debian's pg_dump is a Perl wrapper that takes a while to start:
    // ask for its version while we connect.
    let pg_dump = thread::spawn(PgDump::locate);
    let mut client = target.connect()?;
    let server = tools::server_version(target, &mut client)?;
    let pg_dump = pg_dump
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("checking pg_dump failed")))?;
    pg_dump.check_can_dump(&server)?;
    let size: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .map_err(|e| target.query_error("reading the database size", &e))?
        .get(0);
    let name = match &request.name {
        Some(name) => name.clone(),
        None => crate::catalog::series_name(&target.dbname),
    };
    let (mut pending, artifact) = PendingBackup::start(Plan {
        to: &request.to,
        name: &name,
        format: request.format.name(),
        source: Source {
            kind: "postgres".into(),
            location: target.location(),
        },
        level: request.level,
        database: Some(DatabaseInfo {
            dbname: target.dbname.clone(),
            server_version: server.text.clone(),
            pg_dump_version: pg_dump.version.text.clone(),
            size_bytes: u64::try_from(size).unwrap_or(0),
        }),
        sled: None,
        root: None,
        encryption: request.encryption.as_ref(),
    })?;
    let out = artifact_writer(request, artifact, pending.encryption())
        .map_err(|err| pending.write_error(err))?;

    let snapshot = Snapshot::open(target.clone(), client)?;
    let mut command = target.command(&pg_dump.path);
    command
        .arg(format!("--snapshot={}", snapshot.id))
        .arg("--no-password");
    if request.format == DumpFormat::Custom {
        command.arg("--format=custom");
    }
    let mut child = tools::spawn(&mut command, "pg_dump")?;
    let streamed = stream(&mut child, out);
    let status = child.wait_with_status_text();
    let tables = snapshot.finish();
    let (artifact, sha256, bytes, raw_bytes, tail) = match streamed {
        Ok(done) => done,
        Err(err) => return Err(pending.write_error(err)),
    };
    if let Err(failure) = status {
        bail!("pg_dump failed: {failure}; no backup was written");
    }
    let tables = tables?;
    if request.format == DumpFormat::Plain && !String::from_utf8_lossy(&tail).contains(END_MARKER) {
        bail!("pg_dump's output ended without its end-of-dump marker; no backup was written");
    }
    for table in &tables {
        pending
            .manifest
            .table(table)
            .map_err(|e| pending.write_error(e))?;
    }
    let summary = Summary {
        entries: tables.len() as u64,
        raw_bytes,
        bytes,
        sha256,
        changed: 0,
        skipped: 0,
        content_checksum: None,
    };
    pending.commit(artifact, summary)
}

type Streamed = (Box<dyn ops_storage::Upload>, String, u64, u64, Vec<u8>);

/// Copies pg_dump's stdout into the artifact; keeps the last bytes to
/// check the end marker. Stops pg_dump if reading or writing fails.
fn stream(child: &mut tools::Running, mut out: ArtifactWriter) -> io::Result<Streamed> {
    let mut stdout = child.stdout()?;
    let mut raw_bytes = 0u64;
    let mut tail = Vec::with_capacity(2048);
    loop {
        let read = match out.read_from(&mut stdout, CHUNK) {
            Ok([]) => break,
            Ok(read) => read,
            Err(err) => {
                child.kill();
                return Err(err);
            }
        };
        raw_bytes += read.len() as u64;
        tail.extend_from_slice(&read[read.len().saturating_sub(1024)..]);
        if tail.len() > 1024 {
            tail.drain(..tail.len() - 1024);
        }
    }
    let (artifact, sha256, bytes) = out.finish()?;
    Ok((artifact, sha256, bytes, raw_bytes, tail))
}

/// The exported snapshot, held open by a thread that counts every table's
/// rows in it while pg_dump runs.
struct Snapshot {
    id: String,
    done: Option<std::sync::mpsc::Sender<()>>,
    counting: thread::JoinHandle<anyhow::Result<Vec<Table>>>,
}

impl Snapshot {
    fn open(target: PgTarget, mut client: postgres::Client) -> anyhow::Result<Self> {
        let (id_sender, id_receiver) = channel::<anyhow::Result<String>>();
        let (done, finished): (_, Receiver<()>) = channel();
        let counting = thread::spawn(move || -> anyhow::Result<Vec<Table>> {
            let mut transaction = match client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
            {
                Ok(transaction) => transaction,
                Err(err) => {
                    let err = target.query_error("starting the snapshot", &err);
                    let _ = id_sender.send(Err(anyhow::anyhow!("{err}")));
                    return Ok(Vec::new());
                }
            };
            match transaction.query_one("SELECT pg_export_snapshot()", &[]) {
                Ok(row) => {
                    let _ = id_sender.send(Ok(row.get(0)));
                }
                Err(err) => {
                    let err = target.query_error("exporting the snapshot", &err);
                    let _ = id_sender.send(Err(anyhow::anyhow!("{err}")));
                    return Ok(Vec::new());
                }
            }
            let counted = count_rows(&target, &mut transaction);
            let _ = finished.recv();
            let _ = transaction.commit();
            counted
        });
        let id = id_receiver
            .recv()
            .context("the snapshot thread stopped")??;
        Ok(Snapshot {
            id,
            done: Some(done),
            counting,
        })
    }

    /// Releases the snapshot (pg_dump has finished with it); the counts.
    fn finish(mut self) -> anyhow::Result<Vec<Table>> {
        drop(self.done.take());
        match self.counting.join() {
            Ok(counted) => counted,
            Err(_) => bail!("counting rows failed"),
        }
    }
}

/// The user tables of the connected database and their row counts.
///
/// Fails if a table cannot be read (no privilege).
pub fn count_rows(
    target: &PgTarget,
    client: &mut impl postgres::GenericClient,
) -> anyhow::Result<Vec<Table>> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                               AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| target.query_error("listing tables", &e))?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        let kind: String = row.get(2);
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&schema),
            quote_ident(&name)
        );
        let count: i64 = client
            .query_one(sql.as_str(), &[])
            .map_err(|e| target.query_error(&format!("counting rows of {schema}.{name}"), &e))?
            .get(0);
        tables.push(Table {
            schema,
            name,
            kind: if kind == "p" {
                "partitioned".into()
            } else {
                "table".into()
            },
            rows: u64::try_from(count).unwrap_or(0),
        });
    }
    Ok(tables)
}
