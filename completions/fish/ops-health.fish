complete -c ops-health -l disk -d 'Space and inodes used on the filesystem holding PATH' -r -F
complete -c ops-health -l path -d 'PATH exists (a directory if written with a trailing /); a directory must be writable by this user' -r -F
complete -c ops-health -l postgres -d 'A PostgreSQL server: reachable and how fast, version, connections against max_connections, database size, old and idle-in-transaction sessions, longest query, replication lag on a standby, dead tuples, and whether the installed pg_dump can dump it' -r
complete -c ops-health -l sql -d 'With --postgres: a query returning one number; 0 is ok, more is warn (crit with --sql-crit). E.g. \'orphans=SELECT count(*) FROM ...\'. It runs in a READ ONLY transaction, which stops writes to tables but not functions that act on the server (pg_terminate_backend, pg_cancel_backend, nextval): connect as a role that may only read, such as a member of pg_monitor' -r
complete -c ops-health -l sql-fix -d 'With --fix: the repair of the --sql check of the same NAME, one statement taking the batch size as $1, e.g. \'orphans=DELETE FROM posts WHERE id IN (SELECT ... LIMIT $1)\'. It runs in batches of --batch rows, each its own transaction with a `fix` record, until the check is 0; it stops when a batch changes nothing or the check does not go down. Without --fix it is not run' -r
complete -c ops-health -l backups -d 'Backup directory: per series the newest backup\'s age (crit past --max-age), its verification, count and size; leftovers of crashed runs (warn)' -r -F
complete -c ops-health -l repo -d 'An ops-snapshot repository: per series (snapshot name) the newest snapshot\'s age (crit past --max-age, or when there is none); the chunk index (crit when damaged; a missing one is rebuilt, as ops-snapshot does); temporary files of crashed runs older than an hour (warn)' -r -F
complete -c ops-health -l http -d 'An HTTP endpoint: a 2xx answer within the timeout, and how fast' -r
complete -c ops-health -l sled -d 'A sled database: size on disk, trees, keys, whether sled recovered it on open; in use by another process is reported, not critical' -r -F
complete -c ops-health -l drain -d 'A directory that should drain (a spool or buffer a service empties): files under it older than --drain-age are left behind, by a crash or a stuck consumer (warn, with how many and the oldest\'s age). Symlinks are not followed' -r -F
complete -c ops-health -l disk-warn -d '--disk: warn at this share of space or inodes used' -r
complete -c ops-health -l disk-crit -d '--disk: crit at this share of space or inodes used' -r
complete -c ops-health -l max-age -d '--backups, --repo: the newest backup or snapshot of a series may be this old (the recovery point objective)' -r
complete -c ops-health -l max-restore-time -d '--backups: the newest restore test of each series (ops-verify --restore-test) may have taken this long (the recovery time objective): warn when it took longer, crit when there is none, it failed, or it is older than --max-age' -r
complete -c ops-health -l drain-age -d '--drain: files may stay this long (--max-age is the backups\')' -r
complete -c ops-health -l idle-warn -d '--postgres: warn about transactions open, or sessions idle in a transaction, for longer than this' -r
complete -c ops-health -l timeout -d 'How long each check may take before it is reported unknown' -r
complete -c ops-health -l leftover-age -d 'With --fix: how old a temporary file or unfinished upload must be to be removed (a younger one may belong to a run still going, when the place cannot be locked)' -r
complete -c ops-health -l batch -d '--sql-fix: rows per batch, the $1 of each statement' -r
complete -c ops-health -l format -d 'Output format: records (a table on a terminal), prometheus (node_exporter textfile format) or nagios (status line and perfdata)' -r -f -a "records\t''
prometheus\t''
nagios\t''"
complete -c ops-health -l prometheus-file -d 'With --format prometheus: write to FILE atomically instead of stdout (for node_exporter\'s textfile collector). A FILE it replaces keeps its owner, group and mode; a new one is made readable by all (0644). One that cannot be written is an error (exit 3), whatever the checks found' -r -F
complete -c ops-health -l sql-crit -d '--sql: a nonzero result is crit instead of warn'
complete -c ops-health -l deep -d '--sled: also report sled\'s checksum of every key and value'
complete -c ops-health -l fix -d 'Repair what is safe to repair, and say what was done: temporary files of crashed runs in --backups directories and --repo repositories, and unfinished uploads in --backups buckets, older than --leftover-age (only while nothing else holds them), a damaged chunk index of a --repo repository, rebuilt from its packs (while no gc or prune runs), and what --sql checks find, with their --sql-fix repairs. Repairs run first; the checks then report what is left. Locks need no repair: flock(2) locks are dropped by the kernel when their holder dies, lock objects in a bucket go stale'
complete -c ops-health -l dry-run -d 'With --fix: say what would be repaired, change nothing'
complete -c ops-health -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-health -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-health -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-health -s V -l version -d 'Print version'
