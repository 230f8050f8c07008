#!/usr/bin/env bash
# Rampart next to DuckDB on the same job and the same generated data, on this machine:
# JSON lines -> typed columns -> zstd Parquet partitioned by date/hour.
#
#   benches/compare_duckdb.sh            # 1,000,000 events, 5 interleaved runs each
#   EVENTS=5000000 RUNS=3 benches/compare_duckdb.sh
#
# Both get the same thread budget (THREADS, default: all cores). Prints a Markdown table
# with medians and the ratio, ready for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${EVENTS:-1000000}"
RUNS="${RUNS:-5}"
THREADS="${THREADS:-$(nproc)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rampart/target}"

cargo build --release --locked -p rampart-cli >&2
bin="$CARGO_TARGET_DIR/release/rampart"
python="$(scripts/python-env.sh)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin" gen --events "$EVENTS" --out "$work/events.jsonl"
"$python" benches/compare_duckdb.py --rampart "$bin" --input "$work/events.jsonl" \
    --runs "$RUNS" --threads "$THREADS" --work "$work"
