//! The ops-compact binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main(&ops_compact::TOOL, ops_compact::run)
}
