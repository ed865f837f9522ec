//! Measuring a PostgreSQL database: its tables and indexes, their sizes,
//! dead tuples and bloat.
//!
//! Bloat comes from pgstattuple when the extension is installed in the
//! database (`pgstattuple_approx` for tables, `pgstatindex` for B-tree
//! indexes), and otherwise from an estimate built on the planner's
//! statistics: the size the live rows would take at the table's fillfactor
//! against the size on disk (the approach of the well-known
//! `check_postgres`/ioguix bloat queries). Each measurement says which it
//! used. Every query that touches a relation runs under the session's
//! lock_timeout, so a locked table is reported, not waited on.

use postgres::Client;

/// PostgreSQL's page size on every build anyone runs.
const PAGE: f64 = 8192.0;
/// B-tree leaf pages are filled to 90% by default.
const BTREE_FILL: f64 = 90.0;

/// How a bloat figure was arrived at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Pgstattuple,
    Statistics,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Pgstattuple => "pgstattuple",
            Method::Statistics => "statistics",
        }
    }
}

/// A table (or materialized view) as listed from the catalog.
#[derive(Clone, Debug)]
pub struct Table {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub live_tuples: i64,
    pub dead_tuples: i64,
    pub fillfactor: f64,
    /// Whether this user may VACUUM and REINDEX it (owner, database owner,
    /// superuser; MAINTAIN from PostgreSQL 17). VACUUM only warns about a
    /// table it may not touch, so this is checked up front.
    pub maintainable: bool,
}

impl Table {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// An index as listed from the catalog.
#[derive(Clone, Debug)]
pub struct Index {
    pub oid: i64,
    pub table_oid: i64,
    pub schema: String,
    pub name: String,
    pub btree: bool,
    pub valid: bool,
}

impl Index {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// What was measured about one relation.
#[derive(Clone, Debug)]
pub struct Measure {
    /// A table: heap, TOAST and indexes; an index: itself.
    pub bytes: u64,
    /// The share of `bytes` that could be reclaimed, if known.
    pub bloat_bytes: Option<u64>,
    /// Dead tuples against all tuples (tables only).
    pub dead_percent: Option<f64>,
    pub live_tuples: Option<i64>,
    pub dead_tuples: Option<i64>,
    pub method: Method,
}

impl Measure {
    pub fn bloat_percent(&self) -> Option<f64> {
        let bloat = self.bloat_bytes? as f64;
        Some(if self.bytes == 0 {
            0.0
        } else {
            bloat * 100.0 / self.bytes as f64
        })
    }
}

/// The user tables and materialized views, in schema and name order.
pub fn tables(client: &mut Client) -> Result<Vec<Table>, postgres::Error> {
    let rows = client.query(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, \
                coalesce(s.n_live_tup, c.reltuples::int8, 0)::int8, coalesce(s.n_dead_tup, 0)::int8, \
                coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions) \
                          WHERE option_name = 'fillfactor'), '100')::float8, \
                CASE WHEN current_setting('server_version_num')::int >= 170000 \
                     THEN has_table_privilege(c.oid, 'MAINTAIN') \
                     ELSE pg_has_role(c.relowner, 'USAGE') \
                          OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                          OR pg_has_role((SELECT datdba FROM pg_database \
                                          WHERE datname = current_database()), 'USAGE') END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid \
         WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema' \
           AND n.nspname NOT LIKE 'pg\\_%' \
         ORDER BY 2, 3",
        &[],
    )?;
    rows.iter()
        .map(|row| {
            Ok(Table {
                oid: row.try_get(0)?,
                schema: row.try_get(1)?,
                name: row.try_get(2)?,
                live_tuples: row.try_get::<_, i64>(3)?.max(0),
                dead_tuples: row.try_get(4)?,
                fillfactor: row.try_get(5)?,
                maintainable: row.try_get(6)?,
            })
        })
        .collect()
}

/// The indexes of the tables with `oids`, in name order.
pub fn indexes(client: &mut Client, oids: &[i64]) -> Result<Vec<Index>, postgres::Error> {
    let rows = client.query(
        "SELECT i.indexrelid::int8, i.indrelid::int8, n.nspname::text, c.relname::text, \
                am.amname = 'btree', i.indisvalid \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam \
         WHERE i.indrelid::int8 = ANY($1) ORDER BY 3, 4",
        &[&oids],
    )?;
    rows.iter()
        .map(|row| {
            Ok(Index {
                oid: row.try_get(0)?,
                table_oid: row.try_get(1)?,
                schema: row.try_get(2)?,
                name: row.try_get(3)?,
                btree: row.try_get(4)?,
                valid: row.try_get(5)?,
            })
        })
        .collect()
}

/// Whether pgstattuple is installed in this database.
pub fn has_pgstattuple(client: &mut Client) -> Result<bool, postgres::Error> {
    let row = client.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple')",
        &[],
    )?;
    row.try_get(0)
}

/// Whether pgstattuple could be installed (it ships with the server).
pub fn pgstattuple_available(client: &mut Client) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgstattuple')",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .unwrap_or(false)
}

/// Size on disk of a table with its TOAST and indexes.
pub fn table_bytes(client: &mut Client, oid: i64) -> Result<u64, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_total_relation_size($1::int8::oid)::int8",
        &[&oid],
    )?;
    Ok(row.try_get::<_, i64>(0)?.max(0) as u64)
}

/// Measures a table. Fails on a query error, e.g. the lock timeout.
pub fn table(
    client: &mut Client,
    table: &Table,
    method: Method,
) -> Result<Measure, postgres::Error> {
    let bytes = table_bytes(client, table.oid)?;
    // Whether VACUUM is due is the statistics collector's count of dead
    // tuples, as for autovacuum: pgstattuple no longer sees tuples that page
    // pruning has cut down to line pointers, which still need a VACUUM.
    let (live, dead_tuples) = (table.live_tuples, table.dead_tuples);
    let dead = Measure {
        bytes,
        bloat_bytes: None,
        dead_percent: Some(share(dead_tuples, live + dead_tuples)),
        live_tuples: Some(live),
        dead_tuples: Some(dead_tuples),
        method,
    };
    if method == Method::Pgstattuple {
        let row = client.query_one(
            "SELECT table_len::int8, dead_tuple_len::int8, approx_free_space::int8 \
             FROM pgstattuple_approx($1::int8::oid::regclass)",
            &[&table.oid],
        )?;
        let (heap, dead_len, free): (i64, i64, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        // Free space a table keeps by its fillfactor is not bloat.
        let reserved = heap as f64 * (100.0 - table.fillfactor) / 100.0;
        let bloat = ((dead_len + free) as f64 - reserved).max(0.0);
        return Ok(Measure {
            bloat_bytes: Some(bloat as u64),
            ..dead
        });
    }
    let row = client.query_one(
        "SELECT pg_relation_size($1::int8::oid)::int8, \
                (SELECT sum((1 - null_frac) * avg_width)::float8 FROM pg_stats \
                 WHERE schemaname = $2 AND tablename = $3)",
        &[&table.oid, &table.schema, &table.name],
    )?;
    let heap: i64 = row.try_get(0)?;
    let width: Option<f64> = row.try_get(1)?;
    let bloat = match width {
        // Tuple header (23 bytes, aligned to 24), data aligned to 8, and a
        // 4-byte line pointer; pages have a 24-byte header.
        Some(width) => {
            let tuple = 24.0 + (width / 8.0).ceil() * 8.0 + 4.0;
            let per_page = ((PAGE - 24.0) * table.fillfactor / 100.0 / tuple)
                .floor()
                .max(1.0);
            let expected = (live as f64 / per_page).ceil() * PAGE;
            (heap as f64 - expected).max(0.0)
        }
        // Never analyzed: the dead share of the heap is the best guess.
        None => heap as f64 * share(dead_tuples, live + dead_tuples) / 100.0,
    };
    Ok(Measure {
        bloat_bytes: Some(bloat as u64),
        ..dead
    })
}

/// Measures an index. Fails on a query error, e.g. the lock timeout.
pub fn index(
    client: &mut Client,
    index: &Index,
    live_tuples: i64,
    method: Method,
) -> Result<Measure, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_relation_size($1::int8::oid)::int8",
        &[&index.oid],
    )?;
    let bytes = row.try_get::<_, i64>(0)?.max(0) as u64;
    let unmeasured = Measure {
        bytes,
        bloat_bytes: None,
        dead_percent: None,
        live_tuples: None,
        dead_tuples: None,
        method,
    };
    if !index.btree || !index.valid {
        return Ok(unmeasured);
    }
    if method == Method::Pgstattuple {
        let row = client.query_one(
            "SELECT avg_leaf_density::float8, index_size::int8 FROM pgstatindex($1::int8::oid::regclass)",
            &[&index.oid],
        )?;
        let density: f64 = row.try_get(0)?;
        let bloat = if density.is_nan() {
            0.0
        } else {
            bytes as f64 * (1.0 - density / BTREE_FILL).max(0.0)
        };
        return Ok(Measure {
            bloat_bytes: Some(bloat as u64),
            ..unmeasured
        });
    }
    // Index tuple header (8 bytes) plus the key columns, aligned to 8, and
    // a 4-byte line pointer; a page keeps 24 bytes of header and 16 of
    // B-tree special space. Expression keys have no statistics: no figure.
    let row = client.query_one(
        "SELECT bool_and(s.avg_width IS NOT NULL) AND count(*) = i.indnatts, \
                coalesce(sum((1 - s.null_frac) * s.avg_width), 0)::float8 \
         FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
         JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname \
                             AND s.attname = a.attname \
         WHERE i.indexrelid = $1::int8::oid GROUP BY i.indnatts",
        &[&index.oid],
    )?;
    let known: Option<bool> = row.try_get(0)?;
    if known != Some(true) {
        return Ok(unmeasured);
    }
    let width: f64 = row.try_get(1)?;
    let entry = 8.0 + (width / 8.0).ceil() * 8.0 + 4.0;
    let per_page = ((PAGE - 40.0) * BTREE_FILL / 100.0 / entry)
        .floor()
        .max(1.0);
    // One meta page, and inner pages about 1% of the leaves.
    let expected = ((live_tuples as f64 / per_page).ceil() * 1.01 + 1.0).ceil() * PAGE;
    Ok(Measure {
        bloat_bytes: Some((bytes as f64 - expected).max(0.0) as u64),
        ..unmeasured
    })
}

/// `part` of `whole`, in percent.
fn share(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
