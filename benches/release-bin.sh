#!/usr/bin/env bash
# Prints the path of the rampart binary the bench scripts measure: BIN if set, else this
# tree's release build (built first, in CARGO_TARGET_DIR, default
# $HOME/.cache/rampart/target).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${BIN:-}" ]]; then
    echo "$BIN"
    exit
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rampart/target}"
cargo build --release --locked -p rampart-cli >&2
echo "$CARGO_TARGET_DIR/release/rampart"
