//! Makes sled databases for `make bench`: `make-sled-db PATH MB [CHURN_ROUNDS]`
//! writes about MB megabytes of keys and values into four trees (text-like
//! and random values, some of several MiB); with CHURN_ROUNDS it then
//! inserts and deletes a quarter of that again each round, leaving the
//! fragmentation ops-compact reclaims.
#![allow(clippy::unwrap_used, clippy::panic)]

use ops_tests::pseudo_random;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(mb)) = (args.get(1), args.get(2).and_then(|m| m.parse::<u64>().ok()))
    else {
        panic!("usage: make-sled-db PATH MB [CHURN_ROUNDS]");
    };
    let churn: u64 = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(0);
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(64 << 20)
        .open()
        .unwrap();
    let target = mb * 1_000_000;
    let mut written = 0u64;
    let mut i = 0u64;
    let trees: Vec<sled::Tree> = ["events", "users", "cache", "blobs"]
        .iter()
        .map(|t| db.open_tree(t).unwrap())
        .collect();
    let text = "user=alice action=login status=ok latency_ms=12 path=/api/v1/items ".repeat(200);
    while written < target {
        let tree = &trees[(i % 4) as usize];
        let value = match i % 4 {
            0 | 1 => text.as_bytes()[..2000 + (i % 7) as usize * 300].to_vec(),
            2 => pseudo_random(4000, i),
            _ if i % 400 == 3 => pseudo_random(3 << 20, i),
            _ => pseudo_random(8000, i),
        };
        written += 16 + value.len() as u64;
        tree.insert(i.to_be_bytes(), value).unwrap();
        i += 1;
    }
    db.flush().unwrap();
    let scratch = db.open_tree("scratch").unwrap();
    for round in 0..churn {
        let mut churned = 0u64;
        let mut k = 0u64;
        while churned < target / 4 {
            scratch
                .insert(
                    k.to_be_bytes(),
                    pseudo_random(16_000, round * 1_000_000 + k),
                )
                .unwrap();
            churned += 16_000;
            k += 1;
        }
        db.flush().unwrap();
        scratch.clear().unwrap();
        db.flush().unwrap();
    }
    println!("{written} bytes in {i} keys");
}
