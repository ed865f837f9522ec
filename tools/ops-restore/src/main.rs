//! The ops-restore binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main(&ops_restore::TOOL, ops_restore::run)
}
