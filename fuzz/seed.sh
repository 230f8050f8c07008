#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets from the repository's fixtures:
#   corpus/decode: each line of fixtures/*.jsonl (the demo file's first 500 lines and
#                  all of its malformed ones; every line of the preset files), plus the
#                  hand-written seeds in seeds/decode
#   corpus/config: each pipelines/*.toml, plus the hand-written seeds in seeds/config
# Files are named by the SHA-1 of their content, so running it again adds nothing.
# Usage: fuzz/seed.sh   (from anywhere; writes under fuzz/corpus)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
mkdir -p "$here/corpus/decode" "$here/corpus/config"

add() { # add TARGET < content
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    mv "$tmp" "$here/corpus/$1/$(sha1sum "$tmp" | cut -c1-40)"
}

lines() { # lines FILE: one seed per line, without its newline
    while IFS= read -r line || [[ -n "$line" ]]; do
        printf '%s' "$line" | add decode
    done
}

for f in "$root"/fixtures/preset-*.jsonl; do
    lines <"$f"
done
head -n 500 "$root/fixtures/demo.jsonl" | lines
# The demo's malformed lines: those that are not one object with a resource_id.
grep -v '^{.*"resource_id":"[^"]' "$root/fixtures/demo.jsonl" | lines || true
for f in "$here"/seeds/decode/*; do
    add decode <"$f"
done

for f in "$root"/pipelines/*.toml "$here"/seeds/config/*; do
    add config <"$f"
done

echo "decode: $(ls "$here/corpus/decode" | wc -l) seeds; config: $(ls "$here/corpus/config" | wc -l) seeds"
