complete -c ops-restore -l to -d 'The directory to restore into (must be missing or empty unless --force), or for a database backup a database URL, postgres://USER@HOST:PORT/DB (created if missing)' -r -F
complete -c ops-restore -l jobs -d 'Parallel pg_restore jobs for custom-format dumps (gives up the single transaction)' -r
complete -c ops-restore -l lock-wait -d 'How long to wait for a snapshot repository that another process holds' -r
complete -c ops-restore -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-restore -l force -d 'Replace the contents of a non-empty target directory (the old contents are removed only after the restore succeeded)'
complete -c ops-restore -l clean -d 'Drop and recreate a target database that already has tables'
complete -c ops-restore -l yes -d 'Confirm --clean without asking (required when stdin is not a terminal)'
complete -c ops-restore -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-restore -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-restore -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-restore -s V -l version -d 'Print version'
