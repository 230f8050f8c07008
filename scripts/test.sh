#!/usr/bin/env bash
# The whole test suite, with its own set-up: formatting, lints, then every test.
#
# Installs what the tests need when it is missing (a Python virtualenv with DuckDB and
# pyarrow, the independent readers of the archive; an S3-compatible server and a
# Kafka-protocol broker, see scripts/services.sh) under $HOME/.cache/rampart, starts the
# services on 127.0.0.1 and stops them on exit, and builds into a persistent target
# directory there, so a second run is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rampart/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Independent archive readers (DuckDB, pyarrow), pinned.
RAMPART_TEST_PYTHON="$(scripts/python-env.sh)"
export RAMPART_TEST_PYTHON

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== services (S3-compatible server, Kafka-protocol broker) on 127.0.0.1"
source scripts/services.sh
services_up
export RAMPART_REQUIRE_SERVICES=1

echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"; services_down' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over every test binary and doc-test run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
