# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ops_snapshot_global_optspecs
    string join \n h/help V/version
end

function __fish_ops_snapshot_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ops_snapshot_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ops_snapshot_using_subcommand
    set -l cmd (__fish_ops_snapshot_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -s V -l version -d 'Print version'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "create" -d 'Snapshot a directory (or a file); the repository is created on first use'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "list" -d 'List the snapshots, oldest first'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "restore" -d 'Restore a snapshot (an id, a unique prefix of one, or `latest`) into a directory'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "diff" -d 'Show what changed between two snapshots: added, removed, modified (content) and metadata (mode, owner, times) paths, as `diff` records'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "export" -d 'Write a snapshot to stdout as a tar archive compressed with zstd (`tar --zstd -xf` extracts it)'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "gc" -d 'Remove data no snapshot needs, and repack packs that are mostly unused'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "rebuild-index" -d 'Rebuild the chunk index from the packs'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "copy" -d 'Copy snapshots into another repository (a directory or a bucket, created on first use): only the chunks it lacks travel, as stored and checked; the manifest last, so the snapshot keeps its id. Snapshots it has already are skipped, so the copy can run from cron'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "key" -d 'The key slots of an encrypted repository: list, add, remove. Each slot holds the repository\'s master key for one passphrase or age public key, so changing a password rewrites no data'
complete -c ops-snapshot -n "__fish_ops_snapshot_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l name -d 'The series name [default: the source\'s base name]' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l exclude -d 'Leave out paths matching GLOB (repeatable). A GLOB with a `/` matches the path relative to the source; one without matches a name at any depth' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l level -d 'zstd level of a new repository\'s chunks, 1 to 19' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l threads -d 'Reader and compressor threads; 0 uses every core' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l recipient -d 'With --encrypt, the first key slot is for this age public key instead of a passphrase (repeatable); later runs need its identity' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l skip-unreadable -d 'Warn about paths that cannot be read and leave them out, instead of failing'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l encrypt -d 'Encrypt a new repository (recommended for anything off-site): its master key goes into a first key slot for the passphrase from OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND (or asked twice on the terminal), or for --recipient. An encrypted repository needs no flag afterwards, only its key'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand list" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand list" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand list" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand list" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand list" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand list" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l to -d 'The directory to restore into (created; must be empty unless --force)' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l path -d 'Restore only this path of the snapshot (and what is under it)' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l force -d 'Replace the contents of a non-empty target'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand restore" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand diff" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand diff" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand diff" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand diff" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand diff" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand diff" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand export" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand export" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand export" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand export" -l level -d 'zstd level of the archive' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand export" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -l max-unused -d 'Repack until at most this share of the packs\' bytes is unused' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -l dry-run -d 'Say what would be removed and repacked; change nothing'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand gc" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand rebuild-index" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand rebuild-index" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand rebuild-index" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand rebuild-index" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand rebuild-index" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand rebuild-index" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand copy" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand copy" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand copy" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand copy" -l to -d 'The repository to copy into' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand copy" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand copy" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand copy" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and not __fish_seen_subcommand_from list add remove help" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and not __fish_seen_subcommand_from list add remove help" -f -a "list" -d 'List the key slots (no key needed); `current` marks the one that opened the repository'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and not __fish_seen_subcommand_from list add remove help" -f -a "add" -d 'Add a key slot; the repository is opened with a key it has'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and not __fish_seen_subcommand_from list add remove help" -f -a "remove" -d 'Remove a key slot; not the one that opened the repository in this run, so never the last'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and not __fish_seen_subcommand_from list add remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from list" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from list" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from list" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from list" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from list" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -l new-password-file -d 'The new slot\'s passphrase, in the first line of this file (mode 0600) [default: asked twice on the terminal]' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -l recipient -d 'A slot for this age public key instead of a passphrase (repeatable: one slot any of their identities opens)' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from remove" -l repo -d 'The repository directory' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from remove" -l lock-wait -d 'How long to wait for another process holding the repository' -r
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from remove" -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from remove" -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from remove" -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the key slots (no key needed); `current` marks the one that opened the repository'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a key slot; the repository is opened with a key it has'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a key slot; not the one that opened the repository in this run, so never the last'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "create" -d 'Snapshot a directory (or a file); the repository is created on first use'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "list" -d 'List the snapshots, oldest first'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "restore" -d 'Restore a snapshot (an id, a unique prefix of one, or `latest`) into a directory'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "diff" -d 'Show what changed between two snapshots: added, removed, modified (content) and metadata (mode, owner, times) paths, as `diff` records'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "export" -d 'Write a snapshot to stdout as a tar archive compressed with zstd (`tar --zstd -xf` extracts it)'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "gc" -d 'Remove data no snapshot needs, and repack packs that are mostly unused'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "rebuild-index" -d 'Rebuild the chunk index from the packs'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "copy" -d 'Copy snapshots into another repository (a directory or a bucket, created on first use): only the chunks it lacks travel, as stored and checked; the manifest last, so the snapshot keeps its id. Snapshots it has already are skipped, so the copy can run from cron'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "key" -d 'The key slots of an encrypted repository: list, add, remove. Each slot holds the repository\'s master key for one passphrase or age public key, so changing a password rewrites no data'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and not __fish_seen_subcommand_from create list restore diff export gc rebuild-index copy key help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "list" -d 'List the key slots (no key needed); `current` marks the one that opened the repository'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "add" -d 'Add a key slot; the repository is opened with a key it has'
complete -c ops-snapshot -n "__fish_ops_snapshot_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "remove" -d 'Remove a key slot; not the one that opened the repository in this run, so never the last'
