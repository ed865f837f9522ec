//! The ops-snapshot binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main("ops-snapshot", 2, ops_snapshot::run)
}
