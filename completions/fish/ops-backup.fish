# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ops_backup_global_optspecs
    string join \n h/help V/version
end

function __fish_ops_backup_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ops_backup_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ops_backup_using_subcommand
    set -l cmd (__fish_ops_backup_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ops-backup -n "__fish_ops_backup_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -s V -l version -d 'Print version'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -f -a "create" -d 'Back up a directory or a file into a backup directory'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -f -a "list" -d 'List the backups in directories, oldest first, rebuilt from the directories alone'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -f -a "copy" -d 'Copy the backups whose records arrive on stdin to another directory or bucket, each checked by its checksum on arrival; those already there are skipped'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -f -a "keygen" -d 'Make an age key pair for encrypted backups: the identity goes to a file that only its owner can read, the public key (the recipient) to stdout. Hosts that back up need only the public key'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -f -a "wal-push" -d 'Archive one WAL file in PLACE/wal/: what PostgreSQL\'s archive_command runs, `archive_command = \'ops-backup wal-push %p --to PLACE\'`. The file is compressed and checksummed and appears only once complete; the same file pushed again succeeds, other content under an archived name is refused. Any failure exits non-zero, so PostgreSQL keeps the file and tries again. Quiet on success'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -f -a "wal-get" -d 'Fetch one WAL file from PLACE/wal/, checked against its checksum: what restore_command runs, `restore_command = \'ops-backup wal-get %f %p --from PLACE\'`. A file the archive does not have exits 1 without a word, as recovery expects; a damaged one fails loudly'
complete -c ops-backup -n "__fish_ops_backup_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l to -d 'The backup directory to write into (created, owner-only, if missing; its parent must exist)' -r -F
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l name -d 'The series name used in the artifact name [default: the source\'s base name]. A series holds one source: a second source of the same base name (svcA/data after svcB/data) is refused until it gets a name of its own' -r
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l level -d 'zstd compression level, 1 (fastest) to 19 (smallest)' -r
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l threads -d 'Compression threads; 0 uses every core (one for sled, whose reading is the bottleneck)' -r
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l exclude -d 'Leave out paths matching GLOB (repeatable). A GLOB with a `/` matches the path relative to the source; one without matches a name at any depth' -r
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l format -d 'For databases: plain SQL compressed with zstd (.sql.zst), or pg_dump\'s custom format stored as is (.dump, for pg_restore -j)' -r -f -a "plain\t''
custom\t''"
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l recipient -d 'Encrypt to this age public key (age1..., repeatable): only the holder of its identity can read the backup, not this host' -r
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l recipients-file -d 'Encrypt to every public key in this file, one per line, `#` comments allowed (repeatable) [env: OPS_RECIPIENTS_FILE]' -r -F
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l skip-unreadable -d 'Warn about files that cannot be read and leave them out, instead of failing'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l passphrase -d 'Encrypt with a passphrase (scrypt) read from the file OPS_PASSWORD_FILE names, the first line OPS_PASSWORD_COMMAND prints, or asked for on the terminal'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand create" -s h -l help -d 'Print help'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand list" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand list" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand list" -s h -l help -d 'Print help'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand copy" -l to -d 'The directory or s3://BUCKET/PREFIX to copy into (a directory is created, owner-only, if missing; a bucket must exist)' -r -F
complete -c ops-backup -n "__fish_ops_backup_using_subcommand copy" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand copy" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand copy" -s h -l help -d 'Print help'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand keygen" -s o -l output -d 'The file to write the new identity (secret key) to, mode 0600; an existing file is never overwritten. Its public key is printed on stdout, ready to be a --recipients-file' -r -F
complete -c ops-backup -n "__fish_ops_backup_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand wal-push" -l to -d 'The backup directory or s3://BUCKET/PREFIX holding the archive' -r -F
complete -c ops-backup -n "__fish_ops_backup_using_subcommand wal-push" -s h -l help -d 'Print help'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand wal-get" -l from -d 'The backup directory or s3://BUCKET/PREFIX holding the archive' -r -F
complete -c ops-backup -n "__fish_ops_backup_using_subcommand wal-get" -s h -l help -d 'Print help'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand help; and not __fish_seen_subcommand_from create list copy keygen wal-push wal-get help" -f -a "create" -d 'Back up a directory or a file into a backup directory'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand help; and not __fish_seen_subcommand_from create list copy keygen wal-push wal-get help" -f -a "list" -d 'List the backups in directories, oldest first, rebuilt from the directories alone'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand help; and not __fish_seen_subcommand_from create list copy keygen wal-push wal-get help" -f -a "copy" -d 'Copy the backups whose records arrive on stdin to another directory or bucket, each checked by its checksum on arrival; those already there are skipped'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand help; and not __fish_seen_subcommand_from create list copy keygen wal-push wal-get help" -f -a "keygen" -d 'Make an age key pair for encrypted backups: the identity goes to a file that only its owner can read, the public key (the recipient) to stdout. Hosts that back up need only the public key'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand help; and not __fish_seen_subcommand_from create list copy keygen wal-push wal-get help" -f -a "wal-push" -d 'Archive one WAL file in PLACE/wal/: what PostgreSQL\'s archive_command runs, `archive_command = \'ops-backup wal-push %p --to PLACE\'`. The file is compressed and checksummed and appears only once complete; the same file pushed again succeeds, other content under an archived name is refused. Any failure exits non-zero, so PostgreSQL keeps the file and tries again. Quiet on success'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand help; and not __fish_seen_subcommand_from create list copy keygen wal-push wal-get help" -f -a "wal-get" -d 'Fetch one WAL file from PLACE/wal/, checked against its checksum: what restore_command runs, `restore_command = \'ops-backup wal-get %f %p --from PLACE\'`. A file the archive does not have exits 1 without a word, as recovery expects; a damaged one fails loudly'
complete -c ops-backup -n "__fish_ops_backup_using_subcommand help; and not __fish_seen_subcommand_from create list copy keygen wal-push wal-get help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
