#!/usr/bin/env bash
# SQL over the audit history: Rampart's `rampart query` next to DuckDB on the same
# compacted archive, the same SQL, the same thread budget, a new process per query.
#
#   benches/history_query.sh                          # 30,000,000 events over 30 days
#   EVENTS=2000000 RUNS=3 benches/history_query.sh    # a quick try
#   ARCHIVE=/path KEEP=1 benches/history_query.sh     # keep the archive; reuse it if there
#
# Building the archive: `rampart gen --span ${DAYS}d` (RESOURCES distinct resources,
# event times from START) piped into `rampart run --source - --until-end` with the rules
# off, then `rampart compact --older-than 0s`. The stream is in event-time order, so
# each hour would otherwise be one file; `sink.max-file-rows` (FILE_ROWS) makes every
# hour several small files, as a live stream with a roll interval does, for compaction
# to rewrite sorted by resource and time. No JSON touches the disk.
#
# The archive takes about 2.3 GB while being built (1 GB after compaction).
# Then RUNS interleaved runs of each query with each engine (THREADS threads each).
# Prints Markdown tables with medians and ratios, ready for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${EVENTS:-30000000}"
DAYS="${DAYS:-30}"
RESOURCES="${RESOURCES:-10000}"
START="${START:-2026-10-01T00:00:00Z}"
FILE_ROWS="${FILE_ROWS:-5000}"
RUNS="${RUNS:-5}"
THREADS="${THREADS:-2}"
# BIN: a rampart binary to measure instead of this tree's release build.
bin="$(benches/release-bin.sh)"
python="$(scripts/python-env.sh)"

if [[ -n "${ARCHIVE:-}" ]]; then
    archive="$ARCHIVE"
    scratch="$archive"
else
    scratch="$(mktemp -d)"
    archive="$scratch/archive"
fi
if [[ -z "${KEEP:-}" ]]; then
    trap 'rm -rf "$scratch"' EXIT
fi
export RAMPART_LOG=warn TOKIO_WORKER_THREADS="$THREADS"

if [[ ! -d "$archive/events" ]]; then
    t0=$(date +%s.%N)
    "$bin" gen --events "$EVENTS" --resources "$RESOURCES" --start "$START" --span "${DAYS}d" \
        | RAMPART_RULES__ENABLED=false RAMPART_SINK__MAX_FILE_ROWS="$FILE_ROWS" \
            RAMPART_COMPACT__INTERVAL=0s \
            "$bin" run --source - --archive "$archive" --until-end >/dev/null
    t1=$(date +%s.%N)
    before=$(find "$archive/events" -name '*.parquet' | wc -l)
    # Every table, the dead_letters hour holding the run's 938 messages of 1 MiB included.
    "$bin" compact --archive "$archive" --older-than 0s >&2
    t2=$(date +%s.%N)
    after=$(find "$archive/events" -name '*.parquet' | wc -l)
    echo "built the archive: gen | run $(echo "$t1 - $t0" | bc) s, compact $(echo "$t2 - $t1" | bc) s;" \
        "events files $before -> $after, $(du -sh "$archive/events" | cut -f1)" >&2
fi

"$python" benches/history_query.py --rampart "$bin" --archive "$archive" \
    --runs "$RUNS" --threads "$THREADS"
