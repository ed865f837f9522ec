//! The ops-verify binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main(&ops_verify::TOOL, ops_verify::run)
}
