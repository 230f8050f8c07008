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
rm -rf archive alerts.jsonl
mkdir -p archive && touch archive/.rampart-demo

echo "== rampart run --config pipelines/demo.toml"
"$rampart" run --config pipelines/demo.toml

echo "== what landed: events per category"
"$rampart" query "SELECT category, count(*) AS events, count(DISTINCT resource_id) AS resources
                  FROM events GROUP BY category ORDER BY events DESC"
echo "== dead letters by reason"
"$rampart" query "SELECT reason_code, count(*) AS n, min(source_line) AS first_line, min(reason) AS example
                  FROM dead_letters GROUP BY reason_code ORDER BY n DESC"
echo "== policy hits per rule"
"$rampart" query "SELECT rule_id, action, count(*) AS windows, sum(hit_count) AS hits, count(DISTINCT resource_id) AS resources
                  FROM policy_hits GROUP BY rule_id, action ORDER BY rule_id"
echo "== largest attack increases"
"$rampart" query "SELECT window_start, resource_id, category, prev_count, hit_count, round(increase_pct, 1) AS increase_pct
                  FROM policy_hits WHERE rule_id = 'attack_increase' ORDER BY increase_pct DESC LIMIT 5"
echo "== violations still open"
"$rampart" query "SELECT rule_id, count(*) AS open FROM violations v
                  WHERE state = 'open' AND NOT EXISTS (SELECT 1 FROM violations r WHERE r.state = 'resolved'
                    AND r.resource_id = v.resource_id AND r.rule_id = v.rule_id AND r.opened_at = v.opened_at)
                  GROUP BY rule_id"
echo "== alerts: $(wc -l < alerts.jsonl) lines in alerts.jsonl, for example:"
head -n 2 alerts.jsonl
echo "== archive layout"
find archive -name '*.parquet' | sort | head -n 8
find archive/_rampart -type f | sort | head -n 3
echo "== rampart verify: the manifest chain and every file's SHA-256"
"$rampart" verify
