//! The ops-backup binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main("ops-backup", 2, ops_backup::run)
}
