//! The ops-health binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main("ops-health", 3, ops_health::run)
}
