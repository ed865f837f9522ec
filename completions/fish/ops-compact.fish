complete -c ops-compact -l repo -d 'Compact an ops-snapshot repository: the same as `ops-snapshot gc` (remove data no snapshot needs, repack mostly unused packs)' -r -F
complete -c ops-compact -l max-unused -d 'Repack until at most this share of the packs\' bytes is unused [default: 10%]' -r
complete -c ops-compact -l files -d 'Compress plain files: every file under DIR, or what a GLOB matches (quote it: \'data/raw/*.jsonl\'); repeatable' -r
complete -c ops-compact -l older-than -d 'Only files last modified longer ago than this [default: 1d]' -r
complete -c ops-compact -l level -d 'zstd compression level, 1 to 19 [default: 3]' -r
complete -c ops-compact -l jobs -d 'Files compressed at once [default: the number of CPUs]' -r
complete -c ops-compact -l min-dead -d 'VACUUM (ANALYZE) tables with at least this share of dead tuples [default: 10%]' -r
complete -c ops-compact -l min-bloat -d 'With --full or --reindex: act on tables and indexes with at least this share of bloat [default: 20%]' -r
complete -c ops-compact -l table -d 'Only this table (NAME or SCHEMA.NAME); repeatable' -r
complete -c ops-compact -l lock-timeout -d 'Give up on a table whose lock is not granted within this long, and go on with the next [default: 5s]' -r
complete -c ops-compact -l statement-timeout -d 'Cancel any one statement (a VACUUM FULL, a bloat scan) that runs longer than this; 0s for no limit [default: 1h]' -r
complete -c ops-compact -l min-reclaim -d 'sled: rebuild only when at least this share of the space on disk is reclaimable [default: 20%]' -r
complete -c ops-compact -l dry-run -d 'Say what would be done and why; change nothing'
complete -c ops-compact -l full -d 'VACUUM FULL bloated tables. It rewrites each table under an ACCESS EXCLUSIVE lock (no reads or writes until it is done), so it needs --yes'
complete -c ops-compact -l yes -d 'Go ahead with --full'
complete -c ops-compact -l reindex -d 'REINDEX CONCURRENTLY bloated indexes (reads and writes go on)'
complete -c ops-compact -l force -d 'sled: rebuild whatever the reclaimable share'
complete -c ops-compact -l keep-old -d 'sled: keep the old copy beside the database as PATH.old-<time> instead of removing it after success'
complete -c ops-compact -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-compact -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-compact -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-compact -s V -l version -d 'Print version'
