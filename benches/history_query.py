"""Times `rampart query` and DuckDB on the same SQL over the same archive files.

Each run of each query is a new process for both engines, as `rampart query` is: Rampart
opens the archive (its manifests), plans over the committed files, answers and appends
its access-log record; DuckDB (a new Python process) imports duckdb, reads the files with
`read_parquet(..., hive_partitioning = true)` and answers. Both get the same thread
count. Runs are interleaved. Wall time of the whole process is what is compared; the
DuckDB child also reports its time inside the process (without Python's start and the
import), printed alongside. The CPU time (user + system) of each process is printed too:
on a shared machine it is less disturbed by the neighbours than the wall time.
"""
import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def connect(archive, threads):
    """A DuckDB connection with the view `events` over the archive's events files."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE VIEW events AS SELECT * FROM read_parquet("
        f"'{archive}/events/*/*/*.parquet', hive_partitioning = true)")
    return con


def duckdb_child(archive, sql, threads):
    t = time.perf_counter()
    con = connect(archive, threads)
    t_in = time.perf_counter()
    rows = con.execute(sql).fetchall()
    inner = time.perf_counter() - t_in
    print(f"{len(rows)} {inner:.4f} {time.perf_counter() - t:.4f}")


def timed(args, env=None):
    """Runs `args`; its stdout, wall seconds and CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, elapsed, cpu


def run_rampart(binary, archive, sql, threads):
    env = dict(os.environ, TOKIO_WORKER_THREADS=str(threads), RAMPART_LOG="warn")
    out, elapsed, cpu = timed(
        [binary, "query", "--format", "json", "--archive", archive, sql], env)
    return elapsed, sum(1 for line in out.splitlines() if line.strip()), cpu


def run_duckdb(archive, sql, threads):
    out, elapsed, cpu = timed([sys.executable, __file__, "--duckdb-child", "--archive",
                               archive, "--sql", sql, "--threads", str(threads)])
    rows, inner, _ = out.split()
    return elapsed, int(rows), float(inner), cpu


def queries(archive, threads):
    con = connect(archive, threads)
    first, last, rows = con.execute(
        "SELECT min(date), max(date), count(*) FROM events").fetchone()
    # One week from the second day; the resource: the median resource id of that week's
    # first day (the middle of the sort order, not an edge).
    w0 = first + dt.timedelta(days=1)
    w1 = w0 + dt.timedelta(days=6)
    resource = con.execute(
        f"SELECT quantile_disc(resource_id, 0.5) FROM events WHERE date = DATE '{w0}'"
    ).fetchone()[0]
    con.close()
    ts0 = f"{w0}T00:00:00Z"
    ts1 = f"{w1 + dt.timedelta(days=1)}T00:00:00Z"
    cols = 'ts, category, outcome, severity, src_ip, dst_ip, dst_port, "user", message'
    return rows, first, last, {
        "resource-week (date + ts)":
            f"SELECT {cols} FROM events WHERE resource_id = '{resource}' "
            f"AND date BETWEEN DATE '{w0}' AND DATE '{w1}' "
            f"AND ts >= '{ts0}' AND ts < '{ts1}' ORDER BY ts",
        "resource-week (ts only)":
            f"SELECT {cols} FROM events WHERE resource_id = '{resource}' "
            f"AND ts >= '{ts0}' AND ts < '{ts1}' ORDER BY ts",
        "workload-month (events)":
            "SELECT workload, count(*) AS events FROM events "
            f"WHERE date BETWEEN DATE '{first}' AND DATE '{last}' "
            "GROUP BY workload ORDER BY workload",
        "workload-month (events, failures, high, resources)":
            "SELECT workload, count(*) AS events, "
            "count(*) FILTER (WHERE outcome = 'failure') AS failures, "
            "count(*) FILTER (WHERE severity IN ('high', 'critical')) AS high, "
            "count(DISTINCT resource_id) AS resources FROM events "
            f"WHERE date BETWEEN DATE '{first}' AND DATE '{last}' "
            "GROUP BY workload ORDER BY workload",
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rampart")
    p.add_argument("--archive", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duckdb-child", action="store_true")
    p.add_argument("--sql")
    a = p.parse_args()
    if a.duckdb_child:
        duckdb_child(a.archive, a.sql, a.threads)
        return

    import duckdb

    total, first, last, qs = queries(a.archive, a.threads)
    files = sum(1 for _, _, fs in os.walk(os.path.join(a.archive, "events"))
                for f in fs if f.endswith(".parquet"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"duckdb {duckdb.__version__}; threads {a.threads}")
    print(f"archive: {total:,} events, {first} to {last}, {files} files; "
          f"{a.runs} interleaved runs, a new process each\n")
    for name, sql in qs.items():
        print(f"{name}:\n\n```sql\n{sql}\n```\n")
    # The same answers: row counts of every query, and every value of the aggregates.
    con = connect(a.archive, a.threads)
    for name, sql in qs.items():
        env = dict(os.environ, RAMPART_LOG="warn")
        out, _, _ = timed([a.rampart, "query", "--format", "json", "--archive", a.archive,
                           sql], env)
        mine = [json.loads(line) for line in out.splitlines() if line.strip()]
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        theirs = [dict(zip(names, row)) for row in cursor.fetchall()]
        if len(mine) != len(theirs) or (name.startswith("workload") and mine != theirs):
            sys.exit(f"{name}: rampart and duckdb disagree:\n{mine[:10]}\n{theirs[:10]}")
    con.close()
    keys = ("rampart", "duckdb", "duckdb_inner", "rampart_cpu", "duckdb_cpu")
    res = {name: {k: [] for k in keys} for name in qs}
    rows = {}
    for _ in range(a.runs):
        for name, sql in qs.items():
            t, n, cpu = run_rampart(a.rampart, a.archive, sql, a.threads)
            res[name]["rampart"].append(t)
            res[name]["rampart_cpu"].append(cpu)
            td, nd, inner, dcpu = run_duckdb(a.archive, sql, a.threads)
            res[name]["duckdb"].append(td)
            res[name]["duckdb_inner"].append(inner)
            res[name]["duckdb_cpu"].append(dcpu)
            rows[name] = (n, nd)
            if n != nd:
                sys.exit(f"{name}: rampart returned {n} rows, duckdb {nd}")
    print("| query | rows | rampart median s | duckdb median s (process) | "
          "ratio (duckdb / rampart) | duckdb in-process s | rampart CPU s | duckdb CPU s | "
          "rampart runs | duckdb runs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in qs:
        r = res[name]
        mr, md, mi, cr, cd = (statistics.median(r[k]) for k in keys)
        print(f"| {name} | {rows[name][0]} | {mr:.3f} | {md:.3f} | {md / mr:.2f} | {mi:.3f} | "
              f"{cr:.2f} | {cd:.2f} | "
              f"{', '.join(f'{t:.2f}' for t in r['rampart'])} | "
              f"{', '.join(f'{t:.2f}' for t in r['duckdb'])} |")


if __name__ == "__main__":
    main()
