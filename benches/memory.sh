#!/usr/bin/env bash
# Resident memory of `rampart run` (windows and rules on) with RESOURCES distinct
# resources in window state, sampled every second, for a run and for a run LONG times
# longer over the same resources.
#
#   benches/memory.sh                                   # 1,000,000 resources
#   RESOURCES=100000 EVENTS=1000000 LONG=2 benches/memory.sh   # a quick try
#
# The input: `rampart gen --resources RESOURCES --events EVENTS --span SPAN_MINUTES`
# piped into `rampart run --source - --until-end` (no JSON on disk). The span is a few windows
# (`window.size`, 5 minutes by default), so each window holds about EVENTS / windows
# events over the resources: with the defaults, 2,000,000 events per window over
# 1,000,000 resources, so most resources come into the window state. The long run has
# LONG times the events over LONG times the span: the same event rate per window, LONG
# times as many windows. Flat memory means its RSS series levels off at the short run's.
#
# Prints, per run, the peak (VmHWM) and the VmRSS series (MiB, one sample a second),
# ready for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RESOURCES="${RESOURCES:-1000000}"
EVENTS="${EVENTS:-10000000}"
SPAN_MINUTES="${SPAN_MINUTES:-25}"
LONG="${LONG:-4}"
THREADS="${THREADS:-2}"
# BIN: a rampart binary to measure instead of this tree's release build.
bin="$(benches/release-bin.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export RAMPART_LOG=warn TOKIO_WORKER_THREADS="$THREADS"

# One run: gen | run, sampling the run's VmRSS every second until it exits.
measure() {
    local events=$1 minutes=$2 name=$3
    local t0
    t0=$(date +%s.%N)
    "$bin" gen --events "$events" --resources "$RESOURCES" --span "${minutes}m" \
        | RAMPART_COMPACT__INTERVAL=0s "$bin" run --source - --archive "$work/archive-$name" \
            --until-end >"$work/summary-$name" 2>"$work/log-$name" &
    local run=$!
    local series=() hwm=0 status
    while status=$(cat "/proc/$run/status" 2>/dev/null) && [[ -n "$status" ]]; do
        local rss
        rss=$(awk '/^VmRSS:/ {print int($2 / 1024)}' <<<"$status")
        # The last read, as the process exits, may have no VmHWM line: keep the last one.
        local peak
        peak=$(awk '/^VmHWM:/ {print int($2 / 1024)}' <<<"$status")
        [[ -n "$peak" ]] && hwm="$peak"
        [[ -n "$rss" ]] && series+=("$rss")
        sleep 1
    done
    wait "$run"
    local t1
    t1=$(date +%s.%N)
    local bytes in_state
    bytes=$(du -sb "$work/archive-$name" | cut -f1)
    # Resources that went through window state: those of its outputs (attack rates, rule
    # hits, violations).
    in_state=$("$bin" query --format csv --archive "$work/archive-$name" \
        "SELECT count(DISTINCT resource_id) FROM (SELECT resource_id FROM attack_rates
         UNION ALL SELECT resource_id FROM policy_hits
         UNION ALL SELECT resource_id FROM violations)" | tail -1)
    rm -rf "$work/archive-$name"
    echo "| $name | $events | ${minutes} min | $in_state | $(echo "$t1 - $t0" | bc) | $hwm |"
    echo "$name: ${series[*]}" >>"$work/series"
    echo "$name: archive $((bytes / 1048576)) MiB" >>"$work/notes"
}

echo "machine: $(uname -m), $(nproc) cores, $(uname -r); $RESOURCES resources; threads $THREADS"
echo
echo "| run | events | event-time span | resources in window outputs | wall s | peak RSS (VmHWM, MiB) |"
echo "|---|---|---|---|---|---|"
measure "$EVENTS" "$SPAN_MINUTES" short
measure "$((EVENTS * LONG))" "$((SPAN_MINUTES * LONG))" long
echo
echo "VmRSS every second (MiB):"
echo
cat "$work/series"
cat "$work/notes"
