//! Check statuses in the monitoring-plugins order, and the one way every
//! check builds its record.

use std::collections::BTreeMap;

use ops_shared::record::Check;

/// How a check came out, least to most severe: a run's status is its most
/// severe check's, crit over warn over unknown, as Nagios ranks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Unknown,
    Warn,
    Crit,
}

impl Level {
    /// `ok`, `warn`, `crit`, `unknown`: the record's `status`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Crit => "crit",
            Level::Unknown => "unknown",
        }
    }

    /// The level a record's status names (anything unexpected is unknown).
    pub fn of(status: &str) -> Level {
        match status {
            "ok" => Level::Ok,
            "warn" => Level::Warn,
            "crit" => Level::Crit,
            _ => Level::Unknown,
        }
    }

    /// The monitoring-plugins exit status: 0, 1, 2, 3.
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Crit => 2,
            Level::Unknown => 3,
        }
    }

    /// Warn or crit when `value` reaches a threshold.
    pub fn by_threshold(value: f64, warn: f64, crit: f64) -> Level {
        if value >= crit {
            Level::Crit
        } else if value >= warn {
            Level::Warn
        } else {
            Level::Ok
        }
    }
}

/// A check record.
pub fn record(
    check: &str,
    target: &str,
    level: Level,
    message: String,
    metrics: BTreeMap<String, f64>,
) -> Check {
    Check {
        check: check.into(),
        target: target.into(),
        status: level.name().into(),
        message,
        metrics,
        extra: serde_json::Map::new(),
    }
}

/// Metrics from name/value pairs.
pub fn metrics<const N: usize>(pairs: [(&str, f64); N]) -> BTreeMap<String, f64> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}
