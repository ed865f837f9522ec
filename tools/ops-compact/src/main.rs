//! The ops-compact binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main("ops-compact", 2, ops_compact::run)
}
