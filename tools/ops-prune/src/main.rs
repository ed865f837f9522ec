//! The ops-prune binary.

fn main() -> std::process::ExitCode {
    ops_shared::entry::main("ops-prune", 2, ops_prune::run)
}
