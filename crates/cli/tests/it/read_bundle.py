"""Reads the events of a Rampart export bundle with DuckDB, as its README tells a
recipient to, independently of Rampart.

Usage (from inside the bundle directory): read_bundle.py

Prints one JSON object: the DuckDB type of `ts`, and the source lines and timestamps
(microseconds) of the events, ordered by source line.
"""
import json

import duckdb

con = duckdb.connect()
rows = con.sql(
    "SELECT source_line, epoch_us(ts), typeof(ts) "
    "FROM read_parquet('data/events/*.parquet') ORDER BY source_line"
).fetchall()
print(json.dumps({
    "ts_type": rows[0][2] if rows else None,
    "lines": [r[0] for r in rows],
    "ts_us": [r[1] for r in rows],
}))
