//! ops-health --postgres on a server near its connection limit. A test
//! binary of its own, so its cluster (max_connections 60) is not shared
//! with tests that need connections.
#![allow(clippy::unwrap_used, clippy::panic)]

use ops_tests::ops;
use ops_tests::pg::cluster;

fn connections(out: &ops_tests::Outcome) -> serde_json::Value {
    out.records()
        .into_iter()
        .find(|r| r["check"] == "pg_connections")
        .unwrap()
}

#[test]
fn connections_warn_at_80_and_crit_at_90_percent_of_max_connections() {
    let pg = cluster();
    let url = pg.url("postgres");
    let open = |n: usize| -> Vec<postgres::Client> {
        (0..n)
            .map(|_| {
                postgres::Config::new()
                    .host_path(&pg.socket_dir)
                    .port(pg.port)
                    .user("postgres")
                    .dbname("postgres")
                    .connect(postgres::NoTls)
                    .unwrap()
            })
            .collect()
    };
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(&url)
        .run()
        .success();
    assert_eq!(connections(&out)["status"], "ok");
    // With ops-health's own connection: 48 of 60 is 80%.
    let mut held = open(47);
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(&url)
        .run()
        .fails_with(1);
    let check = connections(&out);
    assert_eq!(check["status"], "warn", "{check}");
    assert_eq!(check["metrics"]["connections"], 48.0);
    assert!(check["message"]
        .as_str()
        .unwrap()
        .contains("48 of max_connections 60"));
    held.extend(open(6));
    let out = ops("ops-health")
        .arg("--postgres")
        .arg(&url)
        .run()
        .fails_with(2);
    assert_eq!(connections(&out)["status"], "crit");
}
