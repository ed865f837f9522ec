complete -c ops-prune -l repo -d 'An ops-snapshot repository whose snapshots are candidates (repeatable)' -r -F
complete -c ops-prune -l files -d 'Plain files as candidates: every file under a directory, or a glob (quote it: \'backups/*.sql\'); by modification time (repeatable)' -r
complete -c ops-prune -l keep-last -d 'Keep the N newest items' -r
complete -c ops-prune -l keep-hourly -d 'Keep the newest item of each of the last N hours that have items' -r
complete -c ops-prune -l keep-daily -d 'Keep the newest item of each of the last N days that have items' -r
complete -c ops-prune -l keep-weekly -d 'Keep the newest item of each of the last N ISO weeks (Monday to Sunday) that have items' -r
complete -c ops-prune -l keep-monthly -d 'Keep the newest item of each of the last N months that have items' -r
complete -c ops-prune -l keep-yearly -d 'Keep the newest item of each of the last N years that have items (N may be `unlimited` for every --keep-* count)' -r
complete -c ops-prune -l keep-within -d 'Keep everything within DURATION (30d, 1y, 6months) of the newest item of its series; measured from the newest item, not from now' -r
complete -c ops-prune -l keep-within-hourly -d 'Keep the newest item of each hour within DURATION of the newest item' -r
complete -c ops-prune -l keep-within-daily -d 'Keep the newest item of each day within DURATION of the newest item' -r
complete -c ops-prune -l keep-within-weekly -d 'Keep the newest item of each ISO week within DURATION of the newest item' -r
complete -c ops-prune -l keep-within-monthly -d 'Keep the newest item of each month within DURATION of the newest item' -r
complete -c ops-prune -l keep-within-yearly -d 'Keep the newest item of each year within DURATION of the newest item' -r
complete -c ops-prune -l older-than -d 'Remove what is older than DURATION, measured from now to the second (the `find -mtime +N -delete` habit); keeps everything younger' -r
complete -c ops-prune -l group-by -d 'Apply the rules per series name (backups and snapshots) or per --files argument (files), or to all items of a directory or repository together' -r -f -a "name\t''
none\t''"
complete -c ops-prune -l now -d 'Evaluate every rule as of TIME (RFC 3339, e.g. 2026-11-22T03:00:00Z), to test and explain a policy' -r
complete -c ops-prune -l lock-wait -d 'How long to wait for a backup directory or repository that a backup, snapshot, gc or another prune holds' -r
complete -c ops-prune -l utc -d 'Calendar buckets in UTC instead of the local time zone (TZ is honoured)'
complete -c ops-prune -s n -l dry-run -d 'Show what would be kept and removed, and why; change nothing'
complete -c ops-prune -l allow-remove-all -d 'Allow removing every item, including the newest backup or snapshot of a series'
complete -c ops-prune -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-prune -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-prune -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-prune -s V -l version -d 'Print version'
