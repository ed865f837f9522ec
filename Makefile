# ops: the two commands a newcomer needs are `make demo` and `make test`.

SHELL      := bash
CARGO      ?= cargo
PREFIX     ?= /usr/local
BACKUP_DIR ?= backups
SOURCE     ?= data
KEEP       ?= 7
# Set DATABASE_URL to make backup-now dump that database instead of SOURCE,
# and for restore-test, integrity-check, integrity-bloat, health, maintenance.
# Recipes that use it are not echoed, so a password in it is not shown.
DATABASE_URL ?=
# integrity-check: SQL checks, one NAME=QUERY per line (see scripts/examples/integrity.sql).
INTEGRITY_SQL ?= scripts/examples/integrity.sql
# integrity-clean: which checks to repair (all, or names from INTEGRITY_SQL) and rows per transaction.
TYPE       ?= all
BATCH      ?= 1000
# backups-snapshot-volume: where the archive of the whole backup directory goes.
VOLUME_DIR ?= $(BACKUP_DIR)-volumes
# backups-download-latest: where backups are fetched from (a directory or s3://BUCKET/PREFIX) and to.
OFFSITE    ?=
DOWNLOAD_DIR ?= downloads
# health: how full the filesystem of . may be before it warns or goes critical.
DISK_WARN  ?= 80%
DISK_CRIT  ?= 90%
# OPS_BIN=DIR runs the tools found there instead of building them (the tests do).
ifdef OPS_BIN
BIN        := $(OPS_BIN)
BUILD      :=
else
BIN        := $(or $(CARGO_TARGET_DIR),target)/release
BUILD      := build
endif

TOOLS := ops-backup ops-verify ops-restore ops-prune ops-snapshot ops-compact ops-health

.PHONY: all build demo test test-deps lint man bench soak install backup-now backups-ls backups-tidy backups-download-latest \
	backups-snapshot-volume verify restore-test integrity-check \
	integrity-clean-dry-run integrity-clean integrity-stats integrity-bloat health maintenance clean

all: build

build:
	$(CARGO) build --release --workspace

## demo: build, make sample data, back up, verify, list, restore; no server needed
demo: $(BUILD)
	OPS_BIN=$(BIN) scripts/demo.sh

## test: formatting, lints and every test (what CI runs); installs what the tests need first
test: test-deps lint
	$(CARGO) test --workspace

test-deps:
	scripts/test-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## man: regenerate man/*.1 and completions/ from the CLI definitions
man:
	OPS_UPDATE_MAN=1 $(CARGO) test -q -p ops-tests --test man

## bench: ours against tar|zstd, sha256sum+zstd -t, tar -x, pg_dump|zstd, zstd -dc|psql; sled throughput; prune over 100k records; find -exec zstd --rm; restic and borg; what the progress line costs
bench: build
	OPS_BIN=$(BIN) scripts/bench.sh
	OPS_BIN=$(BIN) scripts/bench-pg.sh
	OPS_BIN=$(BIN) scripts/bench-sled.sh
	OPS_BIN=$(BIN) scripts/bench-encrypt.sh
	OPS_BIN=$(BIN) scripts/bench-snapshot-encrypt.sh
	OPS_BIN=$(BIN) scripts/bench-prune.sh
	OPS_BIN=$(BIN) scripts/bench-health.sh
	OPS_BIN=$(BIN) scripts/bench-compact.sh
	OPS_BIN=$(BIN) scripts/bench-snapshot.sh
	OPS_BIN=$(BIN) scripts/bench-s3.sh
	OPS_BIN=$(BIN) scripts/bench-progress.sh
	OPS_BIN=$(BIN) scripts/bench-wal.sh

## soak: the tests' crash and race loops (kill -9 at random moments, concurrent first runs), REPEAT times over (10)
soak:
	scripts/soak.sh

## backup-now: back up $(DATABASE_URL) (or $(SOURCE)) into $(BACKUP_DIR), verify it, keep the newest $(KEEP) of each series
backup-now: $(BUILD)
	@set -o pipefail; \
	record=$$($(BIN)/ops-backup create "$(or $(DATABASE_URL),$(SOURCE))" --to $(BACKUP_DIR) --json | $(BIN)/ops-verify --json) || exit 1; \
	$(BIN)/ops-prune --keep-last $(KEEP) $(BACKUP_DIR) --json >/dev/null || exit 1; \
	path=$$(grep -o '"path":"[^"]*"' <<<"$$record" | head -n 1 | cut -d'"' -f4); \
	bytes=$$(grep -o '"bytes":[0-9]*' <<<"$$record" | head -n 1 | cut -d: -f2); \
	echo "Backup completed: $$path (size=$$bytes bytes)"

## backups-ls: the backups in $(BACKUP_DIR)
backups-ls: $(BUILD)
	$(BIN)/ops-backup list $(BACKUP_DIR) --human

## backups-tidy: keep the newest $(KEEP) backups of every series in $(BACKUP_DIR)
backups-tidy: $(BUILD)
	$(BIN)/ops-prune --keep-last $(KEEP) $(BACKUP_DIR) --human

## backups-download-latest: copy the newest backup in $(OFFSITE) (or $(BACKUP_DIR)) to $(DOWNLOAD_DIR), checked on arrival
backups-download-latest: $(BUILD)
	@set -o pipefail; from="$(or $(OFFSITE),$(BACKUP_DIR))"; \
	newest=$$($(BIN)/ops-backup list "$$from" --json | tail -n 1); \
	[[ -n $$newest ]] || { echo "make backups-download-latest: no backups in $$from" >&2; exit 1; }; \
	printf '%s\n' "$$newest" | $(BIN)/ops-backup copy --to $(DOWNLOAD_DIR) --human

## backups-snapshot-volume: one portable, verified archive of all of $(BACKUP_DIR) in $(VOLUME_DIR) (tar --zstd -xf reads it)
backups-snapshot-volume: $(BUILD)
	set -o pipefail; $(BIN)/ops-backup create $(BACKUP_DIR) --to $(VOLUME_DIR) | $(BIN)/ops-verify --human

## health: disk, backups in $(BACKUP_DIR) (and $(DATABASE_URL) if set), as a table
health: $(BUILD)
	@$(BIN)/ops-health --disk . --disk-warn $(DISK_WARN) --disk-crit $(DISK_CRIT) --backups $(BACKUP_DIR) $(if $(DATABASE_URL),--postgres "$(DATABASE_URL)") --human

## verify: verify every backup in $(BACKUP_DIR)
verify: $(BUILD)
	$(BIN)/ops-verify $(BACKUP_DIR) --human

## restore-test: restore the newest database backup in $(BACKUP_DIR) into a scratch database on $(DATABASE_URL)'s server (without DATABASE_URL: the newest backup, on its source's server)
restore-test: $(BUILD)
	@set -o pipefail; \
	if [[ -n "$(DATABASE_URL)" ]]; then \
	  newest=$$($(BIN)/ops-backup list $(BACKUP_DIR) --json | grep '"kind":"postgres"' | tail -n 1); \
	  [[ -n $$newest ]] || { echo "make restore-test: no database backup in $(BACKUP_DIR); run make backup-now first" >&2; exit 1; }; \
	  printf '%s\n' "$$newest" | $(BIN)/ops-verify --restore-test="$(DATABASE_URL)" --human; \
	else \
	  $(BIN)/ops-backup list $(BACKUP_DIR) --json | tail -n 1 | $(BIN)/ops-verify --restore-test --human; \
	fi

## integrity-check: ops-health on $(DATABASE_URL) with the SQL checks in $(INTEGRITY_SQL); changes nothing
integrity-check: $(BUILD)
	@DATABASE_URL="$(DATABASE_URL)" INTEGRITY_SQL="$(INTEGRITY_SQL)" OPS_BIN="$(abspath $(BIN))" scripts/integrity.sh check

## integrity-clean-dry-run: what integrity-clean TYPE=$(TYPE) would remove from $(DATABASE_URL); changes nothing
integrity-clean-dry-run: $(BUILD)
	@DATABASE_URL="$(DATABASE_URL)" INTEGRITY_SQL="$(INTEGRITY_SQL)" TYPE="$(TYPE)" BATCH="$(BATCH)" OPS_BIN="$(abspath $(BIN))" scripts/integrity.sh dry-run

## integrity-clean: run the repairs (fix lines) of $(INTEGRITY_SQL) for TYPE=all or TYPE=NAME[,NAME], BATCH rows per transaction
integrity-clean: $(BUILD)
	@DATABASE_URL="$(DATABASE_URL)" INTEGRITY_SQL="$(INTEGRITY_SQL)" TYPE="$(TYPE)" BATCH="$(BATCH)" OPS_BIN="$(abspath $(BIN))" scripts/integrity.sh clean

## integrity-stats: rows, dead rows, table and index sizes per table of $(DATABASE_URL), and its size (psql); changes nothing
integrity-stats:
	@DATABASE_URL="$(DATABASE_URL)" scripts/integrity.sh stats

## integrity-bloat: bloat per table and index in $(DATABASE_URL); changes nothing
integrity-bloat: $(BUILD)
	@[[ -n "$(DATABASE_URL)" ]] || { echo "make integrity-bloat: set DATABASE_URL" >&2; exit 2; }
	@$(BIN)/ops-compact "$(DATABASE_URL)" --dry-run --human

## maintenance: scripts/maintenance.sh on $(BACKUP_DIR) and $(DATABASE_URL): health --fix, compact, snapshot gc, restore test
maintenance: $(BUILD)
	@DATABASE_URL="$(DATABASE_URL)" BACKUP_DIR="$(BACKUP_DIR)" OPS_BIN="$(abspath $(BIN))" scripts/maintenance.sh

## install: the tools, man pages and maintenance scripts under $(PREFIX)
install: $(BUILD)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7 $(DESTDIR)$(PREFIX)/lib/ops/examples \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 $(addprefix $(BIN)/,$(TOOLS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 scripts/backup.sh scripts/maintenance.sh scripts/cleanup-data.sh scripts/integrity.sh $(DESTDIR)$(PREFIX)/lib/ops/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/ops.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 scripts/examples/* $(DESTDIR)$(PREFIX)/lib/ops/examples/
	install -m 644 completions/bash/* $(DESTDIR)$(PREFIX)/share/bash-completion/completions/
	install -m 644 completions/zsh/* $(DESTDIR)$(PREFIX)/share/zsh/site-functions/
	install -m 644 completions/fish/* $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/

clean:
	$(CARGO) clean
