//! PostgreSQL backups: this module owns the database dump formats. It
//! writes them ([`dump`]) and reads them back ([`check`]) behind
//! [`crate::Format`], using the real pg_dump, psql and pg_restore. It is
//! also the PostgreSQL access layer other tools share (connections and
//! their errors in [`conn`], client versions, restoring into a database
//! with row counts checked), so that ops-restore, ops-compact and
//! ops-health connect, quote and report exactly as backups do.

pub mod check;
pub mod conn;
pub(crate) mod dump;
pub(crate) mod tools;

pub use conn::{is_postgres, PgError, PgTarget};
pub use dump::{count_rows, DumpFormat};
pub use tools::{server_version, PgDump, Version};
