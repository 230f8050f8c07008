#!/usr/bin/env bash
# The main job on the embedded default: the demo pipeline over the bundled fixture into
# ./archive, then queries that show what landed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rampart/target}"

echo "== building rampart (release; the first build takes several minutes)"
cargo build --release --locked -p rampart-cli
rampart="$CARGO_TARGET_DIR/release/rampart"

# A fresh archive each time the demo runs, but never delete one the demo did not make.
if [ -d archive ] && [ ! -f archive/.rampart-demo ]; then
    echo "./archive exists and was not made by this demo; move it away first" >&2
    exit 1
fi
rm -rf archive
mkdir -p archive && touch archive/.rampart-demo

echo "== rampart run --config pipelines/demo.toml"
"$rampart" run --config pipelines/demo.toml

echo "== what landed: events per category"
"$rampart" query "SELECT category, count(*) AS events, count(DISTINCT resource_id) AS resources
                  FROM events GROUP BY category ORDER BY events DESC"
echo "== dead letters by reason"
"$rampart" query "SELECT reason_code, count(*) AS n, min(source_line) AS first_line, min(reason) AS example
                  FROM dead_letters GROUP BY reason_code ORDER BY n DESC"
echo "== archive layout"
find archive -name '*.parquet' | sort | head -n 8
