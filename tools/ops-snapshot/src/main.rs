//! The ops-snapshot binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main(&ops_snapshot::TOOL, ops_snapshot::run)
}
