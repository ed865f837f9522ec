complete -c ops-verify -l level -d 'Backups: quick checks the checksums of artifact and manifest only; full also decompresses and checks every entry' -r -f -a "quick\t''
full\t''"
complete -c ops-verify -l restore-test -d 'Also restore each database backup into a scratch database with a unique name, compare every table\'s row count with the manifest, and drop it again (also on failure or Ctrl-C). The server defaults to the backup\'s source; give another as --restore-test=URL. A sled backup is imported into a temporary database and sled\'s checksum compared' -r
complete -c ops-verify -l repo -d 'Verify every snapshot of this ops-snapshot repository (repeatable)' -r -F
complete -c ops-verify -l read-data-subset -d 'Snapshots: like --read-data, for a random share of the packs (e.g. 10%), so that repeated runs cover the repository over time' -r
complete -c ops-verify -l lock-wait -d 'How long to wait for a repository that another process holds' -r
complete -c ops-verify -l jobs -d 'How many artifacts to verify at once [default: the number of cores]' -r
complete -c ops-verify -l identity -d 'Read encrypted backups and repositories with the age identity (secret key) in this file, as ops-backup keygen or age-keygen writes it; the file must not be readable by others (repeatable) [env: OPS_IDENTITY_FILE]. Passphrase-encrypted ones take OPS_PASSWORD_FILE or OPS_PASSWORD_COMMAND, or ask on the terminal' -r -F
complete -c ops-verify -l read-data -d 'Snapshots: also read every pack, checking its table against its name, and decompress and hash every chunk'
complete -c ops-verify -l json -d 'Write JSON-lines records even when stdout is a terminal'
complete -c ops-verify -l human -d 'Write a human table even when stdout is not a terminal'
complete -c ops-verify -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ops-verify -s V -l version -d 'Print version'
