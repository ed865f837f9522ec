//! The policy against restic's documented examples, each rule on its own,
//! and the calendar's edge cases.

use super::*;
use proptest::prelude::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn window(text: &str) -> Window {
    Window::parse(text).unwrap()
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// The times kept, newest first, as RFC 3339 text.
fn kept(policy: &RetentionPolicy, times: &[Timestamp], now: &str, zone: &TimeZone) -> Vec<String> {
    let mut times = times.to_vec();
    times.sort_by(|a, b| b.cmp(a));
    policy
        .apply(&times, ts(now), zone)
        .iter()
        .zip(&times)
        .filter(|(verdict, _)| verdict.keep)
        .map(|(_, time)| time.to_string())
        .collect()
}

fn daily_at_noon(from: &str, days: i64) -> Vec<Timestamp> {
    let first = ts(from);
    (0..days)
        .map(|day| {
            first
                .checked_add(SignedDuration::from_hours(24 * day))
                .unwrap()
        })
        .collect()
}

#[test]
fn restic_docs_twelve_sundays_keep_daily_4_keeps_the_last_four_sundays() {
    let sundays: Vec<Timestamp> = (0..12)
        .map(|week| {
            ts("2019-09-01T11:00:00Z")
                .checked_add(SignedDuration::from_hours(24 * 7 * week))
                .unwrap()
        })
        .collect();
    let policy = RetentionPolicy {
        periods: vec![(Period::Daily, Count::Limited(4))],
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &sundays, "2019-11-18T00:00:00Z", &TimeZone::UTC),
        [
            "2019-11-17T11:00:00Z",
            "2019-11-10T11:00:00Z",
            "2019-11-03T11:00:00Z",
            "2019-10-27T11:00:00Z"
        ]
    );
}

#[test]
fn restic_docs_a_century_of_dailies_under_daily_weekly_monthly_yearly() {
    // One backup a day for 100 years, up to Sunday 2026-11-22.
    let days = daily_at_noon("1926-11-23T12:00:00Z", 36525);
    assert_eq!(days.last().unwrap().to_string(), "2026-11-22T12:00:00Z");
    let policy = RetentionPolicy {
        periods: vec![
            (Period::Daily, Count::Limited(7)),
            (Period::Weekly, Count::Limited(5)),
            (Period::Monthly, Count::Limited(12)),
            (Period::Yearly, Count::Limited(75)),
        ],
        ..Default::default()
    };
    let kept = kept(&policy, &days, "2026-11-23T00:00:00Z", &TimeZone::UTC);
    let dates: Vec<&str> = kept.iter().map(|t| &t[..10]).collect();
    // 7 dailies; weekly adds the 4 Sundays before them (the newest week is
    // already kept); monthly adds the last day of the 11 months before this
    // one; yearly adds 31 December of 2024 back to 1952 (2026 and 2025 are
    // already kept).
    let mut expected: Vec<String> = (16..=22).rev().map(|d| format!("2026-11-{d}")).collect();
    expected.extend(["2026-11-15", "2026-11-08", "2026-11-01", "2026-10-25"].map(String::from));
    expected.push("2026-10-31".into());
    expected.extend(
        [
            "09-30", "08-31", "07-31", "06-30", "05-31", "04-30", "03-31", "02-28", "01-31",
        ]
        .map(|d| format!("2026-{d}")),
    );
    expected.push("2025-12-31".into());
    expected.extend((1952..=2024).rev().map(|y| format!("{y}-12-31")));
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, expected);
    assert_eq!(kept.len(), 7 + 4 + 11 + 73);
}

#[test]
fn keep_last_keeps_the_newest_n() {
    let times = daily_at_noon("2026-11-01T12:00:00Z", 5);
    let policy = RetentionPolicy {
        last: Some(Count::Limited(3)),
        ..Default::default()
    };
    let verdicts = policy.apply(
        &times.iter().rev().copied().collect::<Vec<_>>(),
        ts("2026-12-01T00:00:00Z"),
        &TimeZone::UTC,
    );
    let keeps: Vec<bool> = verdicts.iter().map(|v| v.keep).collect();
    assert_eq!(keeps, [true, true, true, false, false]);
    assert_eq!(verdicts[0].reasons, ["last 1 of 3"]);
    assert_eq!(verdicts[4].reasons, ["not among the last 3"]);
}

#[test]
fn keep_hourly_keeps_the_newest_of_each_hour() {
    let times: Vec<Timestamp> = ["10:05", "10:40", "11:10", "11:50", "12:30"]
        .iter()
        .map(|t| ts(&format!("2026-11-20T{t}:00Z")))
        .collect();
    let policy = RetentionPolicy {
        periods: vec![(Period::Hourly, Count::Limited(2))],
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &times, "2026-11-21T00:00:00Z", &TimeZone::UTC),
        ["2026-11-20T12:30:00Z", "2026-11-20T11:50:00Z"]
    );
}

#[test]
fn a_calendar_rule_with_quota_left_keeps_the_oldest_item_too() {
    let times: Vec<Timestamp> = ["01T08", "01T20", "02T08", "02T20", "03T08"]
        .iter()
        .map(|t| ts(&format!("2026-11-{t}:00:00Z")))
        .collect();
    let policy = RetentionPolicy {
        periods: vec![(Period::Daily, Count::Limited(5))],
        ..Default::default()
    };
    let mut newest_first = times.clone();
    newest_first.reverse();
    let verdicts = policy.apply(&newest_first, ts("2026-11-04T00:00:00Z"), &TimeZone::UTC);
    let keeps: Vec<bool> = verdicts.iter().map(|v| v.keep).collect();
    assert_eq!(keeps, [true, true, false, true, true]);
    assert_eq!(
        verdicts[4].reasons,
        ["oldest daily 2026-11-01 (fewer than 5 days have items)"]
    );
    assert_eq!(
        verdicts[2].reasons,
        ["daily 2026-11-02: a newer item is kept for it"]
    );
}

#[test]
fn keep_weekly_monthly_yearly_use_their_own_buckets() {
    let times = daily_at_noon("2026-01-01T12:00:00Z", 365);
    let weekly = RetentionPolicy {
        periods: vec![(Period::Weekly, Count::Limited(2))],
        ..Default::default()
    };
    // 2026-12-31 is a Thursday in ISO week 53; the week before ends Sunday the 27th.
    assert_eq!(
        kept(&weekly, &times, "2027-01-01T00:00:00Z", &TimeZone::UTC),
        ["2026-12-31T12:00:00Z", "2026-12-27T12:00:00Z"]
    );
    let monthly = RetentionPolicy {
        periods: vec![(Period::Monthly, Count::Limited(3))],
        ..Default::default()
    };
    assert_eq!(
        kept(&monthly, &times, "2027-01-01T00:00:00Z", &TimeZone::UTC),
        [
            "2026-12-31T12:00:00Z",
            "2026-11-30T12:00:00Z",
            "2026-10-31T12:00:00Z"
        ]
    );
    let yearly = RetentionPolicy {
        periods: vec![(Period::Yearly, Count::Limited(3))],
        ..Default::default()
    };
    // One year of items: the newest, plus the oldest because quota is left.
    assert_eq!(
        kept(&yearly, &times, "2027-01-01T00:00:00Z", &TimeZone::UTC),
        ["2026-12-31T12:00:00Z", "2026-01-01T12:00:00Z"]
    );
}

#[test]
fn unlimited_keeps_one_per_bucket_forever() {
    let times = daily_at_noon("2020-01-01T12:00:00Z", 366 + 365 + 365);
    let policy = RetentionPolicy {
        periods: vec![(Period::Monthly, Count::Unlimited)],
        ..Default::default()
    };
    let kept = kept(&policy, &times, "2024-01-01T00:00:00Z", &TimeZone::UTC);
    // 36 months, plus the very first day as the oldest.
    assert_eq!(kept.len(), 37);
}

#[test]
fn keep_within_counts_back_from_the_newest_item_not_from_now() {
    let times = daily_at_noon("2026-01-01T12:00:00Z", 10);
    let policy = RetentionPolicy {
        within: Some(window("3d")),
        ..Default::default()
    };
    // Months after the last backup, the last three days still stay.
    assert_eq!(
        kept(&policy, &times, "2026-06-01T00:00:00Z", &TimeZone::UTC),
        [
            "2026-01-10T12:00:00Z",
            "2026-01-09T12:00:00Z",
            "2026-01-08T12:00:00Z"
        ]
    );
    let verdicts = policy.apply(
        &[ts("2026-01-10T12:00:00Z"), ts("2026-01-07T12:00:00Z")],
        ts("2026-06-01T00:00:00Z"),
        &TimeZone::UTC,
    );
    assert_eq!(
        verdicts[1].reasons,
        ["within 3d of the newest: before the cutoff 2026-01-07T12:00:00Z"]
    );
}

#[test]
fn items_dated_in_the_future_do_not_move_the_newest_and_are_kept() {
    let times = [
        ts("2030-01-01T00:00:00Z"),
        ts("2026-01-10T12:00:00Z"),
        ts("2026-01-09T12:00:00Z"),
        ts("2026-01-01T12:00:00Z"),
    ];
    let policy = RetentionPolicy {
        within: Some(window("2d")),
        ..Default::default()
    };
    let keeps: Vec<bool> = policy
        .apply(&times, ts("2026-02-01T00:00:00Z"), &TimeZone::UTC)
        .iter()
        .map(|v| v.keep)
        .collect();
    assert_eq!(keeps, [true, true, true, false]);
}

#[test]
fn keep_within_daily_keeps_one_a_day_inside_the_window() {
    let mut times = Vec::new();
    for day in 1..=6 {
        for hour in [6, 18] {
            times.push(ts(&format!("2026-11-{day:02}T{hour:02}:00:00Z")));
        }
    }
    let policy = RetentionPolicy {
        within_periods: vec![(Period::Daily, window("3d"))],
        ..Default::default()
    };
    // Newest is the 6th 18:00; the window starts the 3rd 18:00 (exclusive).
    assert_eq!(
        kept(&policy, &times, "2026-12-01T00:00:00Z", &TimeZone::UTC),
        [
            "2026-11-06T18:00:00Z",
            "2026-11-05T18:00:00Z",
            "2026-11-04T18:00:00Z"
        ]
    );
}

#[test]
fn older_than_is_measured_from_now_to_the_second() {
    let now = "2026-11-22T12:00:00Z";
    let times = [
        ts("2026-10-23T12:00:01Z"),
        ts("2026-10-23T12:00:00Z"),
        ts("2026-10-23T11:59:59Z"),
    ];
    let policy = RetentionPolicy {
        older_than: Some(window("30d")),
        ..Default::default()
    };
    let verdicts = policy.apply(&times, ts(now), &TimeZone::UTC);
    let keeps: Vec<bool> = verdicts.iter().map(|v| v.keep).collect();
    assert_eq!(keeps, [true, true, false]);
    assert_eq!(
        verdicts[2].reasons,
        ["older than 30d (before 2026-10-23T12:00:00Z)"]
    );
}

#[test]
fn an_item_kept_by_several_rules_lists_every_reason() {
    let times = [ts("2026-11-22T10:00:00Z"), ts("2026-11-21T10:00:00Z")];
    let policy = RetentionPolicy {
        last: Some(Count::Limited(1)),
        periods: vec![(Period::Daily, Count::Limited(7))],
        within: Some(window("1d")),
        ..Default::default()
    };
    let verdicts = policy.apply(&times, ts("2026-11-22T12:00:00Z"), &TimeZone::UTC);
    assert_eq!(
        verdicts[0].reasons,
        [
            "last 1 of 1",
            "daily 2026-11-22",
            "within 1d of the newest (after 2026-11-21T10:00:00Z)"
        ]
    );
    assert_eq!(verdicts[1].reasons, ["daily 2026-11-21"]);
}

#[test]
fn an_hour_repeated_when_clocks_go_back_is_one_bucket() {
    // Berlin, 2026-10-25: 02:30 CEST and 02:30 CET are an hour apart.
    let times = [ts("2026-10-25T01:30:00Z"), ts("2026-10-25T00:30:00Z")];
    let policy = RetentionPolicy {
        periods: vec![(Period::Hourly, Count::Limited(5))],
        ..Default::default()
    };
    let now = "2026-10-26T00:00:00Z";
    let verdicts = policy.apply(&times, ts(now), &zone("Europe/Berlin"));
    assert_eq!(verdicts[0].reasons, ["hourly 2026-10-25T02"]);
    assert!(verdicts[1].keep, "the oldest, kept as quota is left");
    assert_eq!(
        verdicts[1].reasons,
        ["oldest hourly 2026-10-25T02 (fewer than 5 hours have items)"]
    );
    let three = [
        ts("2026-10-25T01:30:00Z"),
        ts("2026-10-25T00:30:00Z"),
        ts("2026-10-24T20:00:00Z"),
    ];
    let keeps: Vec<bool> = policy
        .apply(&three, ts(now), &zone("Europe/Berlin"))
        .iter()
        .map(|v| v.keep)
        .collect();
    assert_eq!(keeps, [true, false, true]);
    let in_utc: Vec<bool> = policy
        .apply(&three, ts(now), &TimeZone::UTC)
        .iter()
        .map(|v| v.keep)
        .collect();
    assert_eq!(in_utc, [true, true, true]);
}

#[test]
fn days_follow_the_local_clock_across_the_spring_change() {
    // Berlin, 2026-03-29: 23:30Z on the 28th is already 00:30 on the 29th.
    let times = [
        ts("2026-03-28T23:30:00Z"),
        ts("2026-03-28T22:30:00Z"),
        ts("2026-03-27T12:00:00Z"),
    ];
    let policy = RetentionPolicy {
        periods: vec![(Period::Daily, Count::Limited(2))],
        ..Default::default()
    };
    let now = ts("2026-03-30T00:00:00Z");
    let berlin: Vec<bool> = policy
        .apply(&times, now, &zone("Europe/Berlin"))
        .iter()
        .map(|v| v.keep)
        .collect();
    assert_eq!(berlin, [true, true, false]);
    let utc: Vec<bool> = policy
        .apply(&times, now, &TimeZone::UTC)
        .iter()
        .map(|v| v.keep)
        .collect();
    assert_eq!(utc, [true, false, true]);
}

#[test]
fn iso_week_53_spans_the_new_year() {
    let times = [
        ts("2027-01-04T12:00:00Z"), // Monday, 2027-W01
        ts("2027-01-03T12:00:00Z"), // Sunday, 2026-W53
        ts("2026-12-28T12:00:00Z"), // Monday, 2026-W53
        ts("2026-12-21T12:00:00Z"), // Monday, 2026-W52
    ];
    let policy = RetentionPolicy {
        periods: vec![(Period::Weekly, Count::Limited(3))],
        ..Default::default()
    };
    let verdicts = policy.apply(&times, ts("2027-01-05T00:00:00Z"), &TimeZone::UTC);
    assert_eq!(verdicts[0].reasons, ["weekly 2027-W01"]);
    assert_eq!(verdicts[1].reasons, ["weekly 2026-W53"]);
    assert_eq!(
        verdicts[2].reasons,
        ["weekly 2026-W53: a newer item is kept for it"]
    );
    assert_eq!(verdicts[3].reasons, ["weekly 2026-W52"]);
    let yearly = RetentionPolicy {
        periods: vec![(Period::Yearly, Count::Limited(1))],
        ..Default::default()
    };
    let early_week = [ts("2025-01-02T12:00:00Z"), ts("2024-12-30T12:00:00Z")];
    let verdicts = yearly.apply(&early_week, ts("2025-02-01T00:00:00Z"), &TimeZone::UTC);
    assert_eq!(verdicts[0].reasons, ["yearly 2025"]);
    assert!(!verdicts[1].keep, "years are calendar years, not ISO years");
    let weekly = RetentionPolicy {
        periods: vec![(Period::Weekly, Count::Limited(1))],
        ..Default::default()
    };
    let verdicts = weekly.apply(&early_week[1..], ts("2025-02-01T00:00:00Z"), &TimeZone::UTC);
    assert_eq!(verdicts[0].reasons, ["weekly 2025-W01"]);
}

#[test]
fn leap_days_are_days_of_february() {
    let times = daily_at_noon("2024-02-27T12:00:00Z", 4); // 27, 28, 29 Feb, 1 Mar
    let policy = RetentionPolicy {
        periods: vec![(Period::Monthly, Count::Limited(2))],
        ..Default::default()
    };
    assert_eq!(
        kept(&policy, &times, "2024-03-02T00:00:00Z", &TimeZone::UTC),
        ["2024-03-01T12:00:00Z", "2024-02-29T12:00:00Z"]
    );
    let within = RetentionPolicy {
        within: Some(window("25h")),
        ..Default::default()
    };
    assert_eq!(
        kept(&within, &times, "2024-03-02T00:00:00Z", &TimeZone::UTC),
        ["2024-03-01T12:00:00Z", "2024-02-29T12:00:00Z"]
    );
}

fn arbitrary_policy() -> impl Strategy<Value = RetentionPolicy> {
    let count = prop_oneof![
        Just(None),
        (1u64..6).prop_map(|n| Some(Count::Limited(n))),
        Just(Some(Count::Unlimited)),
    ];
    let window_text = prop_oneof![Just(None), (1u64..400).prop_map(|h| Some(format!("{h}h")))];
    (
        count.clone(),
        proptest::collection::vec(count, 5),
        window_text.clone(),
        proptest::collection::vec(window_text.clone(), 5),
        window_text,
    )
        .prop_map(
            |(last, periods, within, within_periods, older)| RetentionPolicy {
                last,
                periods: Period::ALL
                    .iter()
                    .zip(periods)
                    .filter_map(|(p, c)| c.map(|c| (*p, c)))
                    .collect(),
                within: within.map(|t| window(&t)),
                within_periods: Period::ALL
                    .iter()
                    .zip(within_periods)
                    .filter_map(|(p, w)| w.map(|w| (*p, window(&w))))
                    .collect(),
                older_than: older.map(|t| window(&t)),
            },
        )
}

proptest! {
    #[test]
    fn applying_the_policy_to_what_it_kept_removes_nothing(
        policy in arbitrary_policy(),
        mut offsets in proptest::collection::vec(0i64..(90 * 24 * 3600), 1..40),
        berlin in any::<bool>(),
    ) {
        let zone = if berlin { zone("Europe/Berlin") } else { TimeZone::UTC };
        let start = ts("2026-09-01T00:00:00Z");
        let now = ts("2026-12-15T00:00:00Z");
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        offsets.dedup();
        let times: Vec<Timestamp> = offsets
            .iter()
            .map(|s| start.checked_add(SignedDuration::from_secs(*s)).unwrap())
            .collect();
        let verdicts = policy.apply(&times, now, &zone);
        let survivors: Vec<Timestamp> = times
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.keep)
            .map(|(t, _)| *t)
            .collect();
        let again = policy.apply(&survivors, now, &zone);
        prop_assert!(again.iter().all(|v| v.keep), "{:?}", again);
        if !policy.is_empty() {
            for verdict in &verdicts {
                prop_assert!(!verdict.reasons.is_empty());
            }
        }
    }
}

#[test]
fn keep_within_steps_back_whole_calendar_months_as_restic_does() {
    let times = [
        ts("2026-08-01T00:00:00Z"),
        ts("2026-07-01T05:00:00Z"),
        ts("2026-06-30T23:00:00Z"),
    ];
    let policy = RetentionPolicy {
        within: Some(window("1month")),
        ..Default::default()
    };
    let verdicts = policy.apply(&times, ts("2026-08-02T00:00:00Z"), &TimeZone::UTC);
    let keeps: Vec<bool> = verdicts.iter().map(|v| v.keep).collect();
    assert_eq!(keeps, [true, true, false]);
    assert_eq!(
        verdicts[2].reasons,
        ["within 1month of the newest: before the cutoff 2026-07-01T00:00:00Z"]
    );
}

#[test]
fn keep_within_days_are_local_calendar_days_across_a_clock_change() {
    // Berlin: 12:00 CET on the 25th, one calendar day back is 12:00 CEST
    // on the 24th (10:00Z), 25 hours earlier.
    let times = [ts("2026-10-25T11:00:00Z"), ts("2026-10-24T10:30:00Z")];
    let policy = RetentionPolicy {
        within: Some(window("1d")),
        ..Default::default()
    };
    let now = ts("2026-10-26T00:00:00Z");
    let berlin: Vec<bool> = policy
        .apply(&times, now, &zone("Europe/Berlin"))
        .iter()
        .map(|v| v.keep)
        .collect();
    assert_eq!(berlin, [true, true]);
    let utc: Vec<bool> = policy
        .apply(&times, now, &TimeZone::UTC)
        .iter()
        .map(|v| v.keep)
        .collect();
    assert_eq!(utc, [true, false]);
}

#[test]
fn durations_that_would_surprise_are_refused() {
    assert!(Window::parse("6m").unwrap_err().contains("ambiguous"));
    assert!(Window::parse("0d").is_err());
    assert!(Window::parse("soon").is_err());
    assert_eq!(Window::parse("1y 6months").unwrap().text, "1y 6months");
}
