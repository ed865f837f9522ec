//! The ops-restore binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main("ops-restore", 2, ops_restore::run)
}
