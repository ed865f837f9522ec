//! The ops-prune binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main(&ops_prune::TOOL, ops_prune::run)
}
