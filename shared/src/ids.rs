//! The one order of backup ids, oldest first, that every tool uses: by
//! time, then by id with runs of digits compared as numbers, so the tenth
//! backup of a second (`data_20261121_120000_10`) comes after the ninth
//! (`..._9`) where a string sort puts it before. `ops-backup list | tail -n 1`
//! is then the newest backup, as ops-health and ops-prune see it.

use std::cmp::Ordering;

use jiff::Timestamp;

use crate::Backup;

/// Orders ids with their runs of ASCII digits compared as numbers.
pub fn compare_ids(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let order = compare_numbers(da, db);
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

/// Orders items by time, then by id as [`compare_ids`] does: oldest first.
pub fn compare_dated(a: (Timestamp, &str), b: (Timestamp, &str)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| compare_ids(a.1, b.1))
}

/// Orders backups oldest first ([`compare_dated`]).
pub fn compare_backups(a: &Backup, b: &Backup) -> Ordering {
    compare_dated((a.time, &a.id), (b.time, &b.id))
}

fn split_digits(text: &[u8]) -> (&[u8], &[u8]) {
    let end = text
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Digit runs by value (leading zeros do not count), then by length so that
/// `01` and `1` still have a fixed order.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |d: &[u8]| -> usize { d.iter().position(|&c| c != b'0').unwrap_or(d.len()) };
    let (sa, sb) = (&a[strip(a)..], &b[strip(b)..]);
    sa.len()
        .cmp(&sb.len())
        .then_with(|| sa.cmp(sb))
        .then_with(|| a.len().cmp(&b.len()))
}

/// The short form of a snapshot id people see in tables and summaries:
/// its first 8 characters, accepted back wherever an id is.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenth_backup_of_a_second_comes_after_the_ninth() {
        let mut ids: Vec<String> = (1..=12)
            .map(|n| match n {
                1 => "data_20261121_120000".to_owned(),
                n => format!("data_20261121_120000_{n}"),
            })
            .collect();
        let expected = ids.clone();
        ids.sort();
        assert_ne!(ids, expected, "a string sort gets this wrong");
        ids.sort_by(|a, b| compare_ids(a, b));
        assert_eq!(ids, expected);
    }

    #[test]
    fn ids_without_numbers_sort_as_text_and_equal_ids_are_equal() {
        assert_eq!(compare_ids("a", "b"), Ordering::Less);
        assert_eq!(compare_ids("ab", "a"), Ordering::Greater);
        assert_eq!(compare_ids("x_10", "x_10"), Ordering::Equal);
        assert_eq!(compare_ids("x_01", "x_1"), Ordering::Greater);
        assert_eq!(compare_ids("x_2", "x_01"), Ordering::Greater);
    }
}
