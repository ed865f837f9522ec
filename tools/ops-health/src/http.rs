//! `--http URL`: what `curl -fsS --max-time N URL` tells: a 2xx answer in
//! time, and how long it took.

use std::time::{Duration, Instant};

use ops_shared::record::Check;

use crate::level::{metrics, record, Level};

pub fn check(url: &str, timeout: Duration) -> Check {
    if !url.contains("://") {
        return record(
            "http",
            url,
            Level::Unknown,
            format!("{url} has no scheme: write http://{url} (or https://{url})"),
            metrics([]),
        );
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(5)
        .build();
    let started = Instant::now();
    let answer = agent.get(url).call();
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    match answer {
        Ok(response) => {
            let status = response.status();
            let (level, verdict) = if (200..300).contains(&status) {
                (Level::Ok, "answered")
            } else {
                (Level::Warn, "answered, but not with 2xx:")
            };
            record(
                "http",
                url,
                level,
                format!(
                    "{verdict} {status} {} in {latency_ms} ms",
                    response.status_text()
                ),
                metrics([
                    ("status_code", f64::from(status)),
                    ("latency_ms", latency_ms),
                ]),
            )
        }
        Err(ureq::Error::Status(status, response)) => record(
            "http",
            url,
            Level::Crit,
            format!(
                "answered {status} {} in {latency_ms} ms; see the service's log",
                response.status_text()
            ),
            metrics([
                ("status_code", f64::from(status)),
                ("latency_ms", latency_ms),
            ]),
        ),
        Err(ureq::Error::Transport(err)) => {
            let level = match err.kind() {
                ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => Level::Unknown,
                _ => Level::Crit,
            };
            record(
                "http",
                url,
                level,
                format!("no answer after {latency_ms} ms: {err}"),
                metrics([("latency_ms", latency_ms)]),
            )
        }
    }
}
