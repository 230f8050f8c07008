#!/usr/bin/env bash
# Ensures the pinned Python tools (DuckDB, pyarrow) exist in a virtualenv under
# $HOME/.cache/rampart/venv and prints the path of its python.
set -euo pipefail
venv="${RAMPART_VENV:-$HOME/.cache/rampart/venv}"
if ! "$venv/bin/python" -c 'import duckdb, pyarrow' 2>/dev/null; then
    echo "installing DuckDB and pyarrow into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.1 pyarrow==26.0.1 >&2
fi
echo "$venv/bin/python"
