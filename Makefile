# ops: the two commands a newcomer needs are `make demo` and `make test`.

CARGO      ?= cargo
PREFIX     ?= /usr/local
BACKUP_DIR ?= backups
SOURCE     ?= data
BIN        := target/release

TOOLS := ops-backup ops-verify ops-restore

.PHONY: all build demo test lint man bench install backup-now backups-ls verify clean

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

## bench: ours against tar|zstd, sha256sum+zstd -t and tar -x, side by side
bench: build
	OPS_BIN=$(BIN) scripts/bench.sh

## backup-now: back up $(SOURCE) into $(BACKUP_DIR) and verify it
backup-now: build
	$(BIN)/ops-backup create $(SOURCE) --to $(BACKUP_DIR) | $(BIN)/ops-verify --human

## backups-ls: the backups in $(BACKUP_DIR)
backups-ls: build
	$(BIN)/ops-backup list $(BACKUP_DIR) --human

## verify: verify every backup in $(BACKUP_DIR)
verify: build
	$(BIN)/ops-verify $(BACKUP_DIR) --human

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(addprefix $(BIN)/,$(TOOLS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/ops.7 $(DESTDIR)$(PREFIX)/share/man/man7/

clean:
	$(CARGO) clean
