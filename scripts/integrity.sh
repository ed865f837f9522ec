#!/usr/bin/env bash
# integrity.sh - the database's integrity checks, their repairs and its
# statistics, from one file of SQL: what make integrity-check,
# integrity-clean-dry-run, integrity-clean and integrity-stats run.
#
#   integrity.sh check     every check (ops-health --sql), changes nothing
#   integrity.sh dry-run   what the repairs of TYPE would remove, changes nothing
#   integrity.sh clean     repair TYPE in batches of BATCH rows (ops-health --fix)
#   integrity.sh stats     rows, dead rows and sizes per table, and the database's size (psql)
#
# INTEGRITY_SQL holds one check per line, NAME=QUERY, returning one number
# (0 is healthy), and optionally its repair, fix NAME=STATEMENT, one
# statement taking the batch size as $1. Lines starting with # and empty
# lines are ignored. Checks run read-only; each batch of a repair is its own
# transaction, and a repair stops when its check passes.
#
# Settings (environment, with defaults):
#   DATABASE_URL   the database (required)
#   INTEGRITY_SQL  the checks and repairs     (scripts/examples/integrity.sql)
#   TYPE           dry-run, clean: all, or check names separated by commas (all)
#   BATCH          clean: rows per transaction (1000)
#   OPS_BIN        directory holding the ops-* tools (found on PATH)
#
# Exit status: ops-health's (0 ok, 1 warn, 2 crit, 3 unknown); 2 for a
# missing setting or file.
set -euo pipefail

mode=${1:-}
INTEGRITY_SQL=${INTEGRITY_SQL:-scripts/examples/integrity.sql}
TYPE=${TYPE:-all}
BATCH=${BATCH:-1000}
[[ -z ${OPS_BIN:-} ]] || PATH="$OPS_BIN:$PATH"

fail() {
	echo "integrity.sh: $*" >&2
	exit 2
}

[[ $mode =~ ^(check|dry-run|clean|stats)$ ]] || fail "say what to do: check, dry-run, clean or stats"
[[ -n ${DATABASE_URL:-} ]] || fail "set DATABASE_URL"

if [[ $mode == stats ]]; then
	PGOPTIONS="-c default_transaction_read_only=on" exec psql -X -q -v ON_ERROR_STOP=1 \
		-d "$DATABASE_URL" <<'SQL'
SELECT current_database() AS database,
       pg_size_pretty(pg_database_size(current_database())) AS size;
SELECT s.schemaname || '.' || s.relname AS "table",
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I',
         s.schemaname, s.relname), false, true, '')))[1]::text::bigint AS rows,
       s.n_dead_tup AS dead_rows,
       pg_size_pretty(pg_table_size(s.relid)) AS table_size,
       pg_size_pretty(pg_indexes_size(s.relid)) AS index_size,
       pg_size_pretty(pg_total_relation_size(s.relid)) AS total_size
FROM pg_stat_user_tables s
ORDER BY pg_total_relation_size(s.relid) DESC, 1;
SQL
fi

[[ -f $INTEGRITY_SQL ]] || fail "$INTEGRITY_SQL not found; write one NAME=QUERY per line (see scripts/examples/integrity.sql) or set INTEGRITY_SQL"
[[ $BATCH =~ ^[1-9][0-9]*$ ]] || fail "BATCH=$BATCH: give a number of rows, e.g. BATCH=5000"

wanted() {
	[[ $mode == check || $TYPE == all || ",$TYPE," == *",$1,"* ]]
}

args=()
names=()
while IFS= read -r line || [[ -n $line ]]; do
	[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
	flag=--sql
	if [[ $line =~ ^fix[[:space:]]+(.*)$ ]]; then
		flag=--sql-fix
		line=${BASH_REMATCH[1]}
	fi
	name=${line%%=*}
	name=${name//[[:space:]]/}
	[[ $flag == --sql ]] && names+=("$name")
	wanted "$name" && args+=("$flag" "$line")
done <"$INTEGRITY_SQL"

if [[ $TYPE != all && $mode != check ]]; then
	for type in ${TYPE//,/ }; do
		[[ " ${names[*]} " == *" $type "* ]] ||
			fail "TYPE=$type: $INTEGRITY_SQL has no check named $type; it has: ${names[*]}"
	done
fi
((${#args[@]})) || fail "$INTEGRITY_SQL holds no check"

case $mode in
check) exec ops-health --postgres "$DATABASE_URL" "${args[@]}" --human ;;
dry-run) exec ops-health --postgres "$DATABASE_URL" "${args[@]}" --fix --dry-run --batch "$BATCH" --human ;;
clean) exec ops-health --postgres "$DATABASE_URL" "${args[@]}" --fix --batch "$BATCH" --human ;;
esac
