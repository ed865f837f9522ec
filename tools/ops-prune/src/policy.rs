//! Retention rules with the semantics of restic's `forget`, so users can move
//! over without surprises, plus `--older-than` for the `find -mtime` habit.
//!
//! A policy looks at one group's items, newest first:
//!
//! - `--keep-last N` keeps the N newest.
//! - `--keep-hourly|daily|weekly|monthly|yearly N` keeps the newest item of
//!   each of the N newest calendar buckets (in the chosen time zone; weeks are
//!   ISO 8601, Monday to Sunday) that hold an item; when fewer buckets than N
//!   exist, the oldest item is kept too, so the history reaches back as far as
//!   the quota allows.
//! - `--keep-within D` keeps items within D of the newest item, not of now:
//!   a series that stopped getting backups is not emptied by the calendar.
//! - `--keep-within-<period> D` keeps the newest item of every bucket within
//!   D of the newest item.
//! - `--older-than D` keeps items younger than D, measured from now (exact,
//!   not floored to whole days as `find -mtime` is).
//!
//! Rules are ORed. A kept item lists every rule that kept it; a removed item
//! lists, for every rule, the cutoff or bucket that passed it by. Items dated
//! after "now" are ignored when finding the newest item, as restic does, and
//! are kept by the duration rules.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

/// A calendar bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    pub const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    /// `hourly`, `daily`, ...: the word in the flag names.
    pub fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Period::Hourly => "hours",
            Period::Daily => "days",
            Period::Weekly => "weeks",
            Period::Monthly => "months",
            Period::Yearly => "years",
        }
    }

    /// The bucket a local time falls into: a number that orders like time.
    fn bucket(self, local: DateTime) -> i64 {
        let (year, month, day, hour) = (
            i64::from(local.year()),
            i64::from(local.month()),
            i64::from(local.day()),
            i64::from(local.hour()),
        );
        match self {
            Period::Hourly => ((year * 100 + month) * 100 + day) * 100 + hour,
            Period::Daily => (year * 100 + month) * 100 + day,
            Period::Weekly => {
                let week = local.date().iso_week_date();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Period::Monthly => year * 100 + month,
            Period::Yearly => year,
        }
    }

    /// The bucket as people write it: `2026-11-20T14`, `2026-11-20`,
    /// `2026-W47`, `2026-11`, `2026`.
    fn label(self, local: DateTime) -> String {
        match self {
            Period::Hourly => local.strftime("%Y-%m-%dT%H").to_string(),
            Period::Daily => local.strftime("%Y-%m-%d").to_string(),
            Period::Weekly => {
                let week = local.date().iso_week_date();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Monthly => local.strftime("%Y-%m").to_string(),
            Period::Yearly => local.strftime("%Y").to_string(),
        }
    }
}

/// How many items (or buckets) a counting rule keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Limited(u64),
    Unlimited,
}

impl Count {
    fn left(self, used: u64) -> bool {
        match self {
            Count::Limited(n) => used < n,
            Count::Unlimited => true,
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Limited(n) => write!(f, "{n}"),
            Count::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A duration as the user wrote it: its exact length (for `--older-than`,
/// like `find`) and its calendar span (for `--keep-within*`, which, as in
/// restic, step back whole months and days on the local calendar).
#[derive(Clone, Debug)]
pub struct Window {
    pub text: String,
    pub length: Duration,
    pub span: Span,
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.length == other.length
    }
}

impl Window {
    /// Parses a humantime duration such as `30d`, `1y 6months` or `36h`.
    ///
    /// Fails on nonsense, on zero, and on a bare `m`, which restic reads as
    /// months and humantime as minutes.
    pub fn parse(text: &str) -> Result<Window, String> {
        let tokens = tokens(text);
        if tokens.iter().any(|(_, unit)| unit == "m") {
            return Err(format!(
                "{text:?} is ambiguous: write months as 6months (or 6M) and minutes as 6min"
            ));
        }
        let length = ops_shared::duration::parse(text).map_err(|err| err.to_string())?;
        if length.is_zero() {
            return Err("a rule's duration must be longer than 0".into());
        }
        let exact = || Span::new().seconds(i64::try_from(length.as_secs()).unwrap_or(i64::MAX));
        let span = calendar_span(&tokens).unwrap_or_else(exact);
        Ok(Window {
            text: text.trim().to_owned(),
            length,
            span,
        })
    }
}

/// `1y 6months` as (1, "y"), (6, "months").
fn tokens(text: &str) -> Vec<(i64, String)> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
        let unit: String = std::iter::from_fn(|| chars.next_if(|c| c.is_alphabetic())).collect();
        if digits.is_empty() && unit.is_empty() {
            chars.next();
            continue;
        }
        tokens.push((digits.parse().unwrap_or(0), unit));
    }
    tokens
}

/// The calendar span of humantime tokens, if every unit has one.
fn calendar_span(tokens: &[(i64, String)]) -> Option<Span> {
    let mut span = Span::new();
    for (n, unit) in tokens {
        span = match unit.as_str() {
            "y" | "yr" | "yrs" | "year" | "years" => span.try_years(*n).ok()?,
            "M" | "month" | "months" => span.try_months(*n).ok()?,
            "w" | "week" | "weeks" => span.try_weeks(*n).ok()?,
            "d" | "day" | "days" => span.try_days(*n).ok()?,
            "h" | "hr" | "hrs" | "hour" | "hours" => span.try_hours(*n).ok()?,
            "min" | "mins" | "minute" | "minutes" => span.try_minutes(*n).ok()?,
            "s" | "sec" | "secs" | "second" | "seconds" => span.try_seconds(*n).ok()?,
            _ => return None,
        };
    }
    Some(span)
}

/// What to keep. Empty rules keep nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetentionPolicy {
    pub last: Option<Count>,
    pub periods: Vec<(Period, Count)>,
    pub within: Option<Window>,
    pub within_periods: Vec<(Period, Window)>,
    pub older_than: Option<Window>,
}

/// The verdict on one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub keep: bool,
    /// Why kept (every rule that kept it), or why not (every rule's cutoff).
    pub reasons: Vec<String>,
}

impl RetentionPolicy {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }

    /// Applies the policy to one group's item times, given newest first, as
    /// of `now`, with calendar buckets in `zone`. Returns one verdict per
    /// time, in the same order.
    pub fn apply(&self, times: &[Timestamp], now: Timestamp, zone: &TimeZone) -> Vec<Verdict> {
        let mut judge = Judge {
            policy: self,
            now,
            zone,
            newest: times.iter().copied().filter(|t| *t <= now).max(),
            oldest: times.len().saturating_sub(1),
            last_used: 0,
            periods: self.periods.iter().map(|_| Tally::default()).collect(),
            within_periods: self
                .within_periods
                .iter()
                .map(|_| Tally::default())
                .collect(),
        };
        times
            .iter()
            .enumerate()
            .map(|(index, &time)| judge.verdict(index, time))
            .collect()
    }
}

/// A policy going through one group's items, newest first.
struct Judge<'a> {
    policy: &'a RetentionPolicy,
    now: Timestamp,
    zone: &'a TimeZone,
    /// The newest item not dated after now.
    newest: Option<Timestamp>,
    /// The index of the oldest item.
    oldest: usize,
    last_used: u64,
    periods: Vec<Tally>,
    within_periods: Vec<Tally>,
}

/// Why an item is kept, and which rules passed it by.
#[derive(Default)]
struct Reasons {
    kept: Vec<String>,
    passed: Vec<String>,
}

impl Judge<'_> {
    /// The verdict on the item at `index`, dated `time`: every rule in turn.
    fn verdict(&mut self, index: usize, time: Timestamp) -> Verdict {
        let local = self.zone.to_datetime(time);
        let mut reasons = Reasons::default();
        self.last(&mut reasons);
        self.periods(index, local, &mut reasons);
        self.within(time, &mut reasons);
        self.within_periods(index, time, local, &mut reasons);
        self.older_than(time, &mut reasons);
        let Reasons { kept, mut passed } = reasons;
        if kept.is_empty() && passed.is_empty() {
            passed.push("no rule keeps it".into());
        }
        if kept.is_empty() {
            Verdict {
                keep: false,
                reasons: passed,
            }
        } else {
            Verdict {
                keep: true,
                reasons: kept,
            }
        }
    }

    fn within_cutoff(&self, window: &Window) -> Option<Timestamp> {
        self.newest
            .map(|newest| back_from(newest, window, self.zone))
    }

    /// `--keep-last`.
    fn last(&mut self, reasons: &mut Reasons) {
        let Some(count) = self.policy.last else {
            return;
        };
        if count.left(self.last_used) {
            self.last_used += 1;
            let last_used = self.last_used;
            reasons.kept.push(match count {
                Count::Limited(n) => format!("last {last_used} of {n}"),
                Count::Unlimited => "last (unlimited)".into(),
            });
        } else {
            reasons.passed.push(format!("not among the last {count}"));
        }
    }

    /// `--keep-hourly` to `--keep-yearly`.
    fn periods(&mut self, index: usize, local: DateTime, reasons: &mut Reasons) {
        for ((period, count), tally) in self.policy.periods.iter().zip(&mut self.periods) {
            let bucket = period.bucket(local);
            let label = || period.label(local);
            if !count.left(tally.used) {
                reasons.passed.push(format!(
                    "{}: not in the {count} newest {} with items",
                    period.name(),
                    period.unit()
                ));
            } else if tally.last != Some(bucket) {
                tally.take(bucket);
                reasons.kept.push(format!("{} {}", period.name(), label()));
            } else if index == self.oldest {
                tally.take(bucket);
                reasons.kept.push(format!(
                    "oldest {} {} (fewer than {count} {} have items)",
                    period.name(),
                    label(),
                    period.unit()
                ));
            } else {
                reasons.passed.push(format!(
                    "{} {}: a newer item is kept for it",
                    period.name(),
                    label()
                ));
            }
        }
    }

    /// `--keep-within`.
    fn within(&self, time: Timestamp, reasons: &mut Reasons) {
        let Some(window) = &self.policy.within else {
            return;
        };
        match self.within_cutoff(window) {
            Some(cutoff) if time <= cutoff => reasons.passed.push(format!(
                "within {} of the newest: before the cutoff {cutoff}",
                window.text
            )),
            Some(cutoff) => reasons.kept.push(format!(
                "within {} of the newest (after {cutoff})",
                window.text
            )),
            None => reasons.kept.push(format!(
                "within {}: every item is dated after now",
                window.text
            )),
        }
    }

    /// `--keep-within-hourly` to `--keep-within-yearly`.
    fn within_periods(
        &mut self,
        index: usize,
        time: Timestamp,
        local: DateTime,
        reasons: &mut Reasons,
    ) {
        let policy = self.policy;
        for (i, (period, window)) in policy.within_periods.iter().enumerate() {
            let rule = format!("{} within {}", period.name(), window.text);
            let bucket = period.bucket(local);
            let cutoff = self.within_cutoff(window);
            let tally = &mut self.within_periods[i];
            match cutoff {
                Some(cutoff) if time <= cutoff => {
                    reasons
                        .passed
                        .push(format!("{rule}: before the cutoff {cutoff}"));
                }
                _ if tally.last != Some(bucket) => {
                    tally.take(bucket);
                    reasons
                        .kept
                        .push(format!("{rule}: {}", period.label(local)));
                }
                _ if index == self.oldest => {
                    reasons
                        .kept
                        .push(format!("oldest {rule}: {}", period.label(local)));
                }
                _ => reasons.passed.push(format!(
                    "{rule}: {} has a newer item kept for it",
                    period.label(local)
                )),
            }
        }
    }

    /// `--older-than`.
    fn older_than(&self, time: Timestamp, reasons: &mut Reasons) {
        let Some(window) = &self.policy.older_than else {
            return;
        };
        let cutoff = before(self.now, window);
        if time >= cutoff {
            reasons
                .kept
                .push(format!("newer than {} (since {cutoff})", window.text));
        } else {
            reasons
                .passed
                .push(format!("older than {} (before {cutoff})", window.text));
        }
    }
}

/// A calendar rule's progress: buckets used so far and the last one taken.
#[derive(Default)]
struct Tally {
    used: u64,
    last: Option<i64>,
}

impl Tally {
    fn take(&mut self, bucket: i64) {
        self.used += 1;
        self.last = Some(bucket);
    }
}

/// `time` minus a window on the calendar of `zone`, as restic's
/// `AddDate(-y, -m, -d)` does.
fn back_from(time: Timestamp, window: &Window, zone: &TimeZone) -> Timestamp {
    time.to_zoned(zone.clone())
        .checked_sub(window.span)
        .map_or(Timestamp::MIN, |zoned| zoned.timestamp())
}

/// `time` minus a window's exact length.
fn before(time: Timestamp, window: &Window) -> Timestamp {
    SignedDuration::try_from(window.length)
        .ok()
        .and_then(|length| time.checked_sub(length).ok())
        .unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
