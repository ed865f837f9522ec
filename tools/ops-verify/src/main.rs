//! The ops-verify binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main("ops-verify", 2, ops_verify::run)
}
