complete -c ops-health -l disk -d 'Space and inodes used on the filesystem holding PATH' -r -F
complete -c ops-health -l path -d 'PATH exists (a directory if written with a trailing /); a directory must be writable by this user' -r -F
complete -c ops-health -l postgres -d 'A PostgreSQL server: reachable and how fast, version, connections against max_connections, database size, old and idle-in-transaction sessions, longest query, replication lag on a standby, dead tuples, and whether the installed pg_dump can dump it' -r
complete -c ops-health -l sql -d 'With --postgres: a query returning one number; 0 is ok, more is warn (crit with --sql-crit). E.g. \'orphans=SELECT count(*) FROM ...\'. It runs in a READ ONLY transaction, which stops writes to tables but not functions that act on the server (pg_terminate_backend, pg_cancel_backend, nextval): connect as a role that may only read, such as a member of pg_monitor' -r
complete -c ops-health -l backups -d 'Backup directory: per series the newest backup\'s age (crit past --max-age), its verification, count and size; leftovers of crashed runs (warn)' -r -F
complete -c ops-health -l repo -d 'An ops-snapshot repository: per series (snapshot name) the newest snapshot\'s age (crit past --max-age, or when there is none); the chunk index (crit when damaged; a missing one is rebuilt, as ops-snapshot does); temporary files of crashed runs older than an hour (warn)' -r -F
complete -c ops-health -l http -d 'An HTTP endpoint: a 2xx answer within the timeout, and how fast' -r
complete -c ops-health -l sled -d 'A sled database: size on disk, trees, keys, whether sled recovered it on open; in use by another process is reported, not critical' -r -F
complete -c ops-health -l drain -d 'A directory that should drain (a spool or buffer a service empties): files under it older than --drain-age are left behind, by a crash or a stuck consumer (warn, with how many and the oldest\'s age). Symlinks are not followed' -r -F
complete -c ops-health -l disk-warn -d '--disk: warn at this share of space or inodes used' -r
complete -c ops-health -l disk-crit -d '--disk: crit at this share of space or inodes used' -r
complete -c ops-health -l max-age -d '--backups, --repo: the newest backup or snapshot of a series may be this old (the recovery point objective)' -r
complete -c ops-health -l drain-age -d '--drain: files may stay this long (--max-age is the backups\')' -r
complete -c ops-health -l idle-warn -d '--postgres: warn about transactions open, or sessions idle in a transaction, for longer than this' -r
complete -c ops-health -l timeout -d 'How long each check may take before it is reported unknown' -r
complete -c ops-health -l format -d 'Output format: records (a table on a terminal), prometheus (node_exporter textfile format) or nagios (status line and perfdata)' -r -f -a "records\t''
prometheus\t''
nagios\t''"
complete -c ops-health -l prometheus-file -d 'With --format prometheus: write to FILE atomically instead of stdout (for node_exporter\'s textfile collector). A FILE it replaces keeps its owner, group and mode; a new one is made readable by all (0644). One that cannot be written is an error (exit 3), whatever the checks found' -r -F
complete -c ops-health -l sql-crit -d '--sql: a nonzero result is crit instead of warn'
complete -c ops-health -l deep -d '--sled: also report sled\'s checksum of every key and value'
complete -c ops-health -l fix -d 'Repair what is safe to repair, and say what was done: temporary files of crashed runs older than an hour in --backups directories and --repo repositories (only while nothing else holds them), and a damaged chunk index of a --repo repository, rebuilt from its packs (while no gc or prune runs). Locks need no repair: they are flock(2) locks, which the kernel drops when their holder dies'
complete -c ops-health -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-health -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-health -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-health -s V -l version -d 'Print version'
