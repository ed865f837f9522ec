//! How the results leave: `check` records (on a terminal, a coloured table
//! ending in `healthy`, `degraded` or `unhealthy`), the Prometheus textfile
//! format node_exporter reads, or the monitoring-plugins status line with
//! perfdata that Nagios and Icinga read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use ops_shared::output::{Colour, OutputMode};
use ops_shared::record::Check;
use ops_shared::{Output, Record};

use crate::cli::{Cli, Format};
use crate::level::Level;

/// A new Prometheus file's mode: node_exporter runs as its own user and
/// must read it. A file we replace keeps its owner, group and mode.
const PROM_MODE: u32 = 0o644;

/// The Prometheus file could not be written, so the results never reach
/// node_exporter: not a finding about the service, and never mistaken for
/// a warning (the run exits 3, unknown).
#[derive(Debug)]
pub struct Unwritten {
    pub file: PathBuf,
    pub err: io::Error,
}

impl fmt::Display for Unwritten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write the Prometheus file {}: {}; node_exporter keeps what was there \
             (or nothing), so these results are not monitored",
            self.file.display(),
            self.err
        )
    }
}

impl std::error::Error for Unwritten {}

/// Writes the checks in the format asked for.
///
/// Fails when stdout cannot be written, or with [`Unwritten`] when the
/// Prometheus file cannot.
pub fn write(cli: &Cli, checks: &[Check]) -> anyhow::Result<()> {
    match cli.format {
        Format::Records => records(cli.output.mode(), checks),
        Format::Prometheus => {
            let text = prometheus(checks);
            match &cli.prometheus_file {
                Some(file) => {
                    ops_shared::atomic::write_replace_keeping(file, text.as_bytes(), PROM_MODE)
                        .map_err(|err| {
                            Unwritten {
                                file: file.clone(),
                                err,
                            }
                            .into()
                        })
                }
                None => Ok(io::stdout().write_all(text.as_bytes())?),
            }
        }
        Format::Nagios => Ok(io::stdout().write_all(nagios(checks).as_bytes())?),
    }
}

fn worst(checks: &[Check]) -> Level {
    checks
        .iter()
        .map(|check| Level::of(&check.status))
        .max()
        .unwrap_or(Level::Ok)
}

fn records(mode: OutputMode, checks: &[Check]) -> anyhow::Result<()> {
    let mut out = Output::stdout(mode);
    if mode == OutputMode::Records {
        for check in checks {
            out.record(check)?;
        }
        return Ok(out.finish()?);
    }
    let paint = |level: Level, text: &str| {
        let colour = match level {
            Level::Ok => Colour::Green,
            Level::Warn => Colour::Yellow,
            Level::Crit => Colour::Red,
            Level::Unknown => Colour::Magenta,
        };
        ops_shared::output::paint(colour, text)
    };
    for check in checks {
        let mut row = check.human_row();
        if let Some(name) = check.extra.get("name").and_then(|n| n.as_str()) {
            row[1] = format!("{} {name}", check.target);
        }
        row[2] = paint(Level::of(&check.status), &check.status);
        out.row(Check::TYPE, &Check::human_header(), row);
    }
    out.finish()?;
    let verdict = match worst(checks) {
        Level::Ok => "healthy",
        Level::Crit => "unhealthy",
        Level::Warn | Level::Unknown => "degraded",
    };
    println!("{}", paint(worst(checks), verdict));
    Ok(())
}

/// The node_exporter textfile format: `ops_check_status` per check, every
/// metric as a gauge `ops_<check>_<metric>`, and the newest backup's or
/// snapshot's time per series as `ops_backup_newest_timestamp_seconds` or
/// `ops_snapshot_newest_timestamp_seconds`, and the newest restore test's
/// as `ops_restore_test_timestamp_seconds` and `_duration_seconds`.
///
/// Long, as one list of metric families in the order the file holds them.
#[allow(clippy::too_many_lines)]
pub fn prometheus(checks: &[Check]) -> String {
    let mut families: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut sample = |family: String, help: String, labels: String, value: f64| {
        if seen.insert((family.clone(), labels.clone())) {
            let entry = families.entry(family.clone()).or_insert((help, Vec::new()));
            entry
                .1
                .push(format!("{family}{{{labels}}} {}", number(value)));
        }
    };
    for check in checks {
        let mut labels = format!(
            "check=\"{}\",target=\"{}\"",
            escape(&check.check),
            escape(&check.target)
        );
        let name = check.extra.get("name").and_then(|n| n.as_str());
        if let Some(name) = name {
            labels.push_str(&format!(",name=\"{}\"", escape(name)));
        }
        sample(
            "ops_check_status".into(),
            "ops-health check status: 0 ok, 1 warn, 2 crit, 3 unknown.".into(),
            labels.clone(),
            f64::from(Level::of(&check.status).exit_code()),
        );
        for (metric, value) in &check.metrics {
            let family = format!("ops_{}_{}", sanitize(&check.check), sanitize(metric));
            let help = format!("ops-health {} check: {metric}.", check.check);
            sample(family, help, labels.clone(), *value);
        }
        let item = match check.check.as_str() {
            "backups" => Some("backup"),
            "repo" => Some("snapshot"),
            _ => None,
        };
        let newest = check.metrics.get("newest_timestamp_seconds");
        if let (Some(name), Some(newest), Some(item)) = (name, newest, item) {
            sample(
                format!("ops_{item}_newest_timestamp_seconds"),
                format!("Time of the newest {item} of each series, in Unix seconds."),
                format!(
                    "name=\"{}\",target=\"{}\"",
                    escape(name),
                    escape(&check.target)
                ),
                *newest,
            );
        }
        if check.check == "backups" {
            for (metric, help) in [
                (
                    "restore_test_duration_seconds",
                    "How long the restore of the newest restore test of each series took.",
                ),
                (
                    "restore_test_timestamp_seconds",
                    "Time of the newest restore test of each series, in Unix seconds.",
                ),
            ] {
                if let (Some(name), Some(value)) = (name, check.metrics.get(metric)) {
                    sample(
                        format!("ops_{metric}"),
                        help.into(),
                        format!(
                            "name=\"{}\",target=\"{}\"",
                            escape(name),
                            escape(&check.target)
                        ),
                        *value,
                    );
                }
            }
        }
    }
    let mut text = String::new();
    for (family, (help, lines)) in families {
        text.push_str(&format!("# HELP {family} {help}\n# TYPE {family} gauge\n"));
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// The monitoring-plugins output: one status line with perfdata, then one
/// line per check.
pub fn nagios(checks: &[Check]) -> String {
    let worst = worst(checks);
    let state = match worst {
        Level::Ok => "OK",
        Level::Warn => "WARNING",
        Level::Crit => "CRITICAL",
        Level::Unknown => "UNKNOWN",
    };
    let problems: Vec<String> = checks
        .iter()
        .filter(|check| check.status != "ok")
        .map(|check| format!("{} {}: {}", check.check, check.target, check.message))
        .collect();
    let summary = if problems.is_empty() {
        format!("{} checks ok", checks.len())
    } else {
        problems.join("; ")
    };
    let perfdata: Vec<String> = checks
        .iter()
        .flat_map(|check| {
            // A series name keeps the labels of two series apart.
            let series = check
                .extra
                .get("name")
                .and_then(|n| n.as_str())
                .map_or(String::new(), |name| format!(" {name}"));
            check.metrics.iter().map(move |(metric, value)| {
                let label = format!("{} {}{series} {metric}", check.check, check.target)
                    .replace(['=', '\''], "_");
                format!("'{label}'={}", number(*value))
            })
        })
        .collect();
    let mut text = format!("OPS {state} - {summary} | {}\n", perfdata.join(" "));
    for check in checks {
        text.push_str(&format!(
            "{} {} {}: {}\n",
            check.status.to_uppercase(),
            check.check,
            check.target,
            check.message
        ));
    }
    text
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}
