"""Reads a Rampart archive with DuckDB and pyarrow, independently of Rampart.

Usage: read_archive.py ARCHIVE_DIR

Prints one JSON object per line: first {"reader": "meta", ...} with the Arrow types
pyarrow sees, then one {"reader": "duckdb", ...} per events row and one
{"reader": "pyarrow-dl", ...} per dead_letters row.
"""
import json
import sys

import duckdb
import pyarrow.dataset as ds

root = sys.argv[1]

events = ds.dataset(f"{root}/events", format="parquet", partitioning="hive")
dead = ds.dataset(f"{root}/dead_letters", format="parquet", partitioning="hive")
print(json.dumps({
    "reader": "meta",
    "ts_type": str(events.schema.field("ts").type),
    "ingested_at_type": str(events.schema.field("ingested_at").type),
    "received_at_type": str(dead.schema.field("received_at").type),
    "events_rows": events.count_rows(),
    "dead_rows": dead.count_rows(),
}))

con = duckdb.connect()
rows = con.sql(f"""
    SELECT source_line, epoch_us(ts) AS ts_us, resource_id, resource_type, category,
           workload, classification, dst_port, patched, policy_allowed, extra,
           strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d') AS ts_date, date::VARCHAR AS date
    FROM read_parquet('{root}/events/**/*.parquet', hive_partitioning = true)
""").fetchall()
cols = ["source_line", "ts_us", "resource_id", "resource_type", "category", "workload",
        "classification", "dst_port", "patched", "policy_allowed", "extra", "ts_date", "date"]
for r in rows:
    d = dict(zip(cols, r))
    d["reader"] = "duckdb"
    print(json.dumps(d))

for batch in dead.to_batches(columns=["source_line", "reason_code", "raw"]):
    for line, code, raw in zip(*(c.to_pylist() for c in batch.columns)):
        print(json.dumps({"reader": "pyarrow-dl", "source_line": line, "reason_code": code,
                          "raw_hex": raw.hex()}))
