//! `make-backups DIR COUNT [SERIES]`: COUNT backups in DIR, spread over
//! SERIES series (default 4), one an hour per series up to now, made as
//! ops-backup makes them (see `ops_tests::dated_backups`). For the prune
//! benchmark: a catalog the size of years of hourly backups.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        panic!("usage: make-backups DIR COUNT [SERIES]");
    }
    let dir = PathBuf::from(&args[1]);
    let count: i64 = args[2].parse().unwrap();
    let series: i64 = args.get(3).map_or(4, |s| s.parse().unwrap());
    let hour = jiff::Timestamp::now().as_second() / 3600 * 3600;
    for s in 0..series {
        let per_series = count / series + i64::from(s < count % series);
        let times: Vec<String> = (0..per_series)
            .rev()
            .map(|n| {
                jiff::Timestamp::from_second(hour - n * 3600)
                    .unwrap()
                    .to_string()
            })
            .collect();
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        ops_tests::dated_backups(&dir, &format!("series{s}"), &times);
    }
    println!("{count}");
}
