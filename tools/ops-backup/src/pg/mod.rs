//! PostgreSQL backups: this module owns the database dump formats. It
//! writes them ([`dump`]) and reads them back ([`check`]) for ops-verify
//! and ops-restore, using the real pg_dump, psql and pg_restore.

pub mod check;
pub mod conn;
pub mod dump;
pub mod tools;

pub use conn::{is_postgres, PgError, PgTarget};
pub use dump::DumpFormat;
