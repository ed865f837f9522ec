//! The ops-backup binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main(&ops_backup::TOOL, ops_backup::run)
}
