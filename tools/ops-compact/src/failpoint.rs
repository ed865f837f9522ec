//! Named steps where the crash tests stop a run, as a `kill -9` would.
//!
//! Only a build with the `failpoints` feature (the workspace's tests enable
//! it through ops-tests) stops anywhere; a release binary ignores
//! `OPS_FAILPOINT`.

/// Aborts here (no cleanup runs) when `OPS_FAILPOINT` names `step`.
#[cfg(feature = "failpoints")]
pub(crate) fn failpoint(step: &str) {
    if std::env::var_os("OPS_FAILPOINT").is_some_and(|wanted| wanted == step) {
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
pub(crate) fn failpoint(_step: &str) {}
