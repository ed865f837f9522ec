//! The ops-health binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main(&ops_health::TOOL, ops_health::run)
}
