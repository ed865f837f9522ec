//! The thin library every `ops-*` tool shares.
//!
//! It owns what the tools promise to each other (the record protocol and its
//! stream I/O) and the conventions every tool keeps (exit statuses, output
//! mode, atomic writes, directory locks, interruption, redaction of secrets, durations,
//! path text). It owns no tool's domain logic: a format belongs to the tool
//! that writes it.

pub mod atomic;
pub mod duration;
pub mod entry;
pub mod exclude;
pub mod files_arg;
pub mod ids;
pub mod interrupt;
pub mod keys;
pub mod lock;
pub mod open;
pub mod output;
pub mod owner;
pub mod path_text;
pub mod progress;
pub mod read;
pub mod record;
pub mod redact;
pub mod sparse;
pub mod staging;
pub mod stream;
pub mod zstd_raw;

pub use entry::{Status, UsageError};
pub use output::{Output, OutputArgs, OutputMode};
pub use record::{Backup, Record, Source, Verification};
pub use stream::{read_records, InputRecord};
