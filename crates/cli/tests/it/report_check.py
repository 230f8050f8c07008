"""Computes the numbers of a Rampart report independently of Rampart: DuckDB reads the
archive's committed Parquet files (the manifests replayed here), and Python does the
rest of the arithmetic, without Rampart's SQL.

Usage: report_check.py ARCHIVE_DIR START END TOP
START and END are RFC 3339 (the report's period.start and period.covered_until); rows
whose time column is in [START, END) count. Prints one JSON object.
"""
import collections
import datetime
import glob
import json
import sys

import duckdb

root, start_text, end_text, top = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def micros(text):
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (t - EPOCH) // datetime.timedelta(microseconds=1)


def day(us):
    return (EPOCH + datetime.timedelta(microseconds=us)).date().isoformat()


start, end = micros(start_text), micros(end_text)

# The committed set: every manifest's adds, minus its removes, in order.
live = {}
for path in sorted(glob.glob(f"{root}/_rampart/manifests/*.json")):
    with open(path) as f:
        m = json.load(f)
    for r in m.get("remove", []):
        live.pop(r["path"], None)
    for a in m.get("add", []):
        live[a["path"]] = a["table"]

con = duckdb.connect()


def rows(table, columns, time_column=None):
    """Dicts of `columns` (time columns as epoch microseconds) of the committed files of
    `table`, those whose `time_column` is in [start, end) when one is given."""
    files = [f"{root}/{p}" for p, t in sorted(live.items()) if t == table]
    if not files:
        return []
    listing = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    where = ""
    if time_column:
        where = f"WHERE epoch_us({time_column}) >= {start} AND epoch_us({time_column}) < {end}"
    sql = f"SELECT {', '.join(columns.values())} FROM read_parquet({listing}) {where}"
    return [dict(zip(columns.keys(), r)) for r in con.execute(sql).fetchall()]


out = {}

events = rows("events", {"resource_id": "resource_id", "workload": "workload"}, "ts")
out["events"] = len(events)

hits = rows("policy_hits", {
    "window_start": "epoch_us(window_start)", "resource_id": "resource_id",
    "workload": "workload", "rule_id": "rule_id", "category": "category",
    "hit_count": "hit_count", "prev_count": "prev_count", "increase_pct": "increase_pct",
}, "window_start")
by_rule_workload = collections.defaultdict(lambda: [0, 0, set()])
for h in hits:
    e = by_rule_workload[(h["rule_id"], h["workload"])]
    e[0] += h["hit_count"]
    e[1] += 1
    e[2].add(h["resource_id"])
out["policy_hits"] = [
    {"rule_id": r, "workload": w, "hits": e[0], "windows": e[1], "resources": len(e[2])}
    for (r, w), e in by_rule_workload.items()
]

changes = rows("violations", {
    "changed_at": "epoch_us(changed_at)", "resource_id": "resource_id",
    "workload": "workload", "rule_id": "rule_id", "state": "state",
    "opened_at": "epoch_us(opened_at)", "resolved_at": "epoch_us(resolved_at)",
    "opened_by": "opened_by",
})
per_rule_workload = collections.defaultdict(lambda: [0, 0])
for c in changes:
    if start <= c["changed_at"] < end:
        per_rule_workload[(c["rule_id"], c["workload"])][0 if c["state"] == "open" else 1] += 1
out["violations"] = [
    {"rule_id": r, "workload": w, "opened": n[0], "resolved": n[1]}
    for (r, w), n in per_rule_workload.items()
]

# Open at the end: an opening before the end whose resolution, if any, is not before it.
resolved_before_end = {
    (c["resource_id"], c["rule_id"], c["opened_by"])
    for c in changes
    if c["state"] == "resolved" and c["resolved_at"] < end
}
still_open = [
    c for c in changes
    if c["state"] == "open" and c["opened_at"] < end
    and (c["resource_id"], c["rule_id"], c["opened_by"]) not in resolved_before_end
]
out["open_violations"] = [
    {"resource_id": c["resource_id"], "rule_id": c["rule_id"], "opened_by": c["opened_by"],
     "workload": c["workload"], "opened_at_us": c["opened_at"],
     "age_seconds": (end - c["opened_at"]) // 1_000_000}
    for c in still_open
]
open_resources = {c["resource_id"] for c in still_open}

# Adherence: a resource counts under every workload its events of the range name, or
# under none (null) when they name no workload at all.
workloads_of = collections.defaultdict(set)
for e in events:
    names = workloads_of[e["resource_id"]]  # every resource seen gets an entry
    if e["workload"] is not None:
        names.add(e["workload"])
members = collections.defaultdict(set)
for resource, names in workloads_of.items():
    for w in (names or {None}):
        members[w].add(resource)
out["adherence"] = [
    {"workload": w, "resources": len(rs), "adherent": len(rs - open_resources)}
    for w, rs in members.items()
]
out["resources"] = len(workloads_of)
out["resources_adherent"] = len(set(workloads_of) - open_resources)

# Largest attack-rate increases: per (resource, category), the biggest rise.
best, rising = {}, collections.Counter()
for h in hits:
    if h["rule_id"] != "attack_increase":
        continue
    key = (h["resource_id"], h["category"])
    rising[key] += 1
    rank = (h["increase_pct"], h["hit_count"], -h["window_start"])
    if key not in best or rank > best[key][0]:
        best[key] = (rank, h)
rates = rows("attack_rates", {
    "resource_id": "resource_id", "category": "category",
    "event_count": "event_count", "rate_per_min": "rate_per_min",
}, "window_start")
attack_events, peak = collections.Counter(), {}
for r in rates:
    key = (r["resource_id"], r["category"])
    attack_events[key] += r["event_count"]
    peak[key] = max(peak.get(key, 0.0), r["rate_per_min"])
ranked = sorted(best.items(), key=lambda kv: (-kv[1][1]["increase_pct"], -kv[1][1]["hit_count"], kv[0]))
out["attack_increases"] = [
    {"resource_id": k[0], "category": k[1], "window_start_us": h["window_start"],
     "prev_count": h["prev_count"], "hit_count": h["hit_count"],
     "increase_pct": h["increase_pct"], "rising_windows": rising[k],
     "attack_events": attack_events[k], "peak_rate_per_min": peak.get(k)}
    for k, (_, h) in ranked[:top]
]

dead = rows("dead_letters", {"reason_code": "reason_code", "raw": "raw"}, "received_at")
by_reason = collections.defaultdict(lambda: [0, 0])
for d in dead:
    by_reason[d["reason_code"]][0] += 1
    by_reason[d["reason_code"]][1] += len(d["raw"])
out["dead_letters"] = [
    {"reason_code": r, "messages": n[0], "bytes": n[1]} for r, n in by_reason.items()
]

# Per UTC day, from the time columns themselves (not from the `date` partition).
daily = collections.defaultdict(lambda: {"policy_hits": 0, "violations_opened": 0,
                                         "violations_resolved": 0, "attack_events": 0})
for h in hits:
    daily[day(h["window_start"])]["policy_hits"] += h["hit_count"]
for c in changes:
    if start <= c["changed_at"] < end:
        state = "violations_opened" if c["state"] == "open" else "violations_resolved"
        daily[day(c["changed_at"])][state] += 1
for r in rows("attack_rates", {"window_start": "epoch_us(window_start)",
                               "event_count": "event_count"}, "window_start"):
    daily[day(r["window_start"])]["attack_events"] += r["event_count"]
out["daily"] = dict(daily)

print(json.dumps(out))
