# ops: the two commands a newcomer needs are `make demo` and `make test`.

CARGO      ?= cargo
PREFIX     ?= /usr/local
BACKUP_DIR ?= backups
SOURCE     ?= data
KEEP       ?= 7
# Set DATABASE_URL to make backup-now dump that database instead of SOURCE.
DATABASE_URL ?=
BIN        := target/release

TOOLS := ops-backup ops-verify ops-restore ops-prune ops-compact ops-health

.PHONY: all build demo test lint man bench install backup-now backups-ls backups-tidy verify restore-test health clean

all: build

build:
	$(CARGO) build --release --workspace

## demo: build, make sample data, back up, verify, list, restore; no server needed
demo: build
	OPS_BIN=$(BIN) scripts/demo.sh

## test: formatting, lints and every test (what CI runs)
test: lint
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## man: regenerate man/*.1 from the CLI definitions
man:
	OPS_UPDATE_MAN=1 $(CARGO) test -q -p ops-tests --test man

## bench: ours against tar|zstd, sha256sum+zstd -t, tar -x, pg_dump|zstd, zstd -dc|psql; sled throughput; prune over 100k records
bench: build
	OPS_BIN=$(BIN) scripts/bench.sh
	OPS_BIN=$(BIN) scripts/bench-pg.sh
	OPS_BIN=$(BIN) scripts/bench-sled.sh
	OPS_BIN=$(BIN) scripts/bench-prune.sh
	OPS_BIN=$(BIN) scripts/bench-health.sh

## backup-now: back up $(DATABASE_URL) (or $(SOURCE)) into $(BACKUP_DIR) and verify it
backup-now: build
	$(BIN)/ops-backup create "$(or $(DATABASE_URL),$(SOURCE))" --to $(BACKUP_DIR) | $(BIN)/ops-verify --human

## backups-ls: the backups in $(BACKUP_DIR)
backups-ls: build
	$(BIN)/ops-backup list $(BACKUP_DIR) --human

## backups-tidy: keep the newest $(KEEP) backups of every series in $(BACKUP_DIR)
backups-tidy: build
	$(BIN)/ops-prune --keep-last $(KEEP) $(BACKUP_DIR) --human

## health: disk, backups in $(BACKUP_DIR) (and $(DATABASE_URL) if set), as a table
health: build
	$(BIN)/ops-health --disk . --backups $(BACKUP_DIR) $(if $(DATABASE_URL),--postgres "$(DATABASE_URL)") --human

## verify: verify every backup in $(BACKUP_DIR)
verify: build
	$(BIN)/ops-verify $(BACKUP_DIR) --human

## restore-test: restore the newest backup in $(BACKUP_DIR) into a scratch database
restore-test: build
	$(BIN)/ops-backup list $(BACKUP_DIR) | tail -n 1 | $(BIN)/ops-verify --restore-test --human

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(addprefix $(BIN)/,$(TOOLS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/ops.7 $(DESTDIR)$(PREFIX)/share/man/man7/

clean:
	$(CARGO) clean
