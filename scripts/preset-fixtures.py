#!/usr/bin/env python3
"""Writes fixtures/preset-ecs.jsonl and fixtures/preset-ocsf.jsonl from
fixtures/preset-native.jsonl: the same events in Elastic Common Schema and OCSF shape.

It follows the mapping tables of the README ("Schema presets") in the other direction,
written independently of the Rust code, so that the decoder's result can be compared
with the native fixture's. Line 19 is written with `host.id` (ECS's fallback for the
resource) and line 20 with flattened ECS keys ("event.action": ...). The last line of
the native file is malformed (no resource); it stays malformed in each shape.

    python3 scripts/preset-fixtures.py
"""

import json
import pathlib
from datetime import datetime

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"

# OCSF class of each contract category: (class_uid, activity_id, activity_name).
OCSF_CLASS = {
    "auth": (3002, 1, "Logon"),
    "brute_force": (2004, 1, "Create"),
    "ddos": (2004, 1, "Create"),
    "malware": (2004, 1, "Create"),
    "vulnerability": (2002, 1, "Create"),
    "patch": (5004, 2, "Update"),
    "network_access": (4001, 6, "Traffic"),
    "data_access": (6005, 2, "Read"),
    "classification_change": (6005, 3, "Update"),
}
OCSF_SEVERITY = {"info": (1, "Informational"), "low": (2, "Low"), "medium": (3, "Medium"),
                 "high": (4, "High"), "critical": (5, "Critical")}
OCSF_STATUS = {"success": 1, "failure": 2, "unknown": 0}


def epoch_ms(ts):
    t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return round(t.timestamp() * 1000)


def put(obj, path, value):
    *parents, last = path.split(".")
    for p in parents:
        obj = obj.setdefault(p, {})
    obj[last] = value


def ecs(e, line):
    out = {}
    flat = line == 20
    put_ = (lambda o, p, v: o.__setitem__(p, v)) if flat else put
    if "ts" in e:
        out["@timestamp"] = e["ts"]
    if "resource_id" in e:
        put_(out, "host.id" if line == 19 else "cloud.instance.id", e["resource_id"])
    for field, path in [
        ("resource_type", "rampart.resource_type"), ("category", "event.action"),
        ("workload", "labels.workload"), ("outcome", "event.outcome"),
        ("severity", "rampart.severity"), ("src_ip", "source.ip"),
        ("dst_ip", "destination.ip"), ("dst_port", "destination.port"),
        ("protocol", "network.transport"), ("user", "user.name"),
        ("classification", "rampart.classification"), ("vuln_id", "vulnerability.id"),
        ("patched", "rampart.patched"), ("policy_allowed", "rampart.policy_allowed"),
        ("message", "message"),
    ]:
        if field in e:
            put_(out, path, e[field])
    put_(out, "event.kind", "event")
    put_(out, "ecs.version", "8.11.0")
    return out


def ocsf(e):
    cls, activity_id, activity = OCSF_CLASS[e["category"]]
    out = {
        "time": epoch_ms(e["ts"]),
        "class_uid": cls,
        "category_uid": cls // 1000,
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": cls * 100 + activity_id,
        "metadata": {"version": "1.3.0", "product": {"name": "rampart fixtures"}},
    }
    if "severity" in e:
        out["severity_id"], out["severity"] = OCSF_SEVERITY[e["severity"]]
    if "outcome" in e:
        out["status_id"] = OCSF_STATUS.get(e["outcome"], 99)
        out["status"] = e["outcome"].capitalize()
    resource = {"type": e["resource_type"]}
    if "resource_id" in e:
        resource["uid"] = e["resource_id"]
    if "workload" in e:
        resource["group"] = {"name": e["workload"]}
    if "classification" in e:
        resource["data_classification"] = {"classification": e["classification"].capitalize()}
    out["resources"] = [resource]
    for field, path in [
        ("src_ip", "src_endpoint.ip"), ("dst_ip", "dst_endpoint.ip"),
        ("dst_port", "dst_endpoint.port"), ("protocol", "connection_info.protocol_name"),
        ("user", "actor.user.name"), ("message", "message"),
        ("category", "unmapped.category"), ("patched", "unmapped.patched"),
        ("policy_allowed", "unmapped.policy_allowed"),
    ]:
        if field in e:
            put(out, path, e[field])
    if "vuln_id" in e:
        out["vulnerabilities"] = [{"cve": {"uid": e["vuln_id"]}}]
    return out


def main():
    events = [json.loads(l) for l in (FIX / "preset-native.jsonl").read_text().splitlines()]
    for name, shape in [("ecs", lambda e, i: ecs(e, i)), ("ocsf", lambda e, i: ocsf(e))]:
        lines = [json.dumps(shape(e, i), separators=(",", ":"), ensure_ascii=False)
                 for i, e in enumerate(events, start=1)]
        (FIX / f"preset-{name}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
