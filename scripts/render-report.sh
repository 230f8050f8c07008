#!/usr/bin/env bash
# Renders a `rampart report` HTML page in headless Chromium and saves a screenshot.
#
#   scripts/render-report.sh                      # a demo report -> docs/report-screenshot.png
#   scripts/render-report.sh REPORT.html [OUT.png]
#
# Without a report, it builds rampart (debug), generates a month of synthetic events
# (the previous calendar month, UTC) into a temporary archive, runs the pipeline and
# `rampart report --month` over it, and screenshots that page. Installs the Debian
# package `chromium` with apt-get when no Chromium is on the PATH (needs root).
# The page has no script and no external asset: Chromium renders it with the network
# off, exactly as an auditor's browser would from the stored copy.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rampart/target}"
width="${WIDTH:-1280}"
height="${HEIGHT:-2000}"

chrome=""
for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then chrome="$c"; break; fi
done
if [ -z "$chrome" ]; then
    echo "== installing Chromium (Debian package chromium)" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "no Chromium found and not root: install it with 'sudo apt-get install chromium'" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    chrome=chromium
fi

if [ $# -ge 1 ]; then
    page="$(realpath "$1")"
    out="${2:-docs/report-screenshot.png}"
else
    out="docs/report-screenshot.png"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "== building rampart" >&2
    cargo build --locked -q -p rampart-cli
    rampart="$CARGO_TARGET_DIR/debug/rampart"
    month="$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)"
    days="$(( ( $(date -u -d "$month-01 +1 month" +%s) - $(date -u -d "$month-01" +%s) ) / 86400 ))"
    echo "== generating $month ($days days) and running the pipeline" >&2
    # Five days of the month before too, so that some violations are carried over.
    "$rampart" gen --events 120000 --seed 2026 --resources 300 --bad-rate 0.004 \
        --start "$(date -u -d "$month-01 -5 days" +%Y-%m-%dT00:00:00Z)" \
        --span "$(( (days + 5) * 24 ))h" --out "$work/events.jsonl" >&2
    "$rampart" run --source "$work/events.jsonl" --archive "$work/archive" --until-end >/dev/null
    "$rampart" report --month "$month" --archive "$work/archive" \
        --out "$work/report.html" --json "$work/report.json" >&2
    page="$work/report.html"
fi

echo "== rendering $page with $chrome" >&2
# --no-sandbox: Chromium's sandbox needs user namespaces, often missing in containers.
"$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --screenshot="$(realpath -m "$out")" --window-size="$width,$height" \
    "file://$page" 2>/dev/null
echo "screenshot: $out"
