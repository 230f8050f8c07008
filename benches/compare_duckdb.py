"""Times Rampart and DuckDB on the same job, interleaved, and prints medians and ratios.

The job: read a JSON-lines file of security events, type every contract column, and
write zstd Parquet partitioned by UTC date and hour. Rampart additionally validates
each message strictly, dead-letters malformed ones with their raw bytes, keeps unknown
fields and source coordinates; DuckDB skips malformed lines (ignore_errors) and keeps
only the typed contract columns. The comparison therefore flatters DuckDB.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import time

import duckdb

COLUMNS = {
    "ts": "TIMESTAMPTZ", "resource_id": "VARCHAR", "resource_type": "VARCHAR",
    "category": "VARCHAR", "workload": "VARCHAR", "outcome": "VARCHAR",
    "severity": "VARCHAR", "src_ip": "VARCHAR", "dst_ip": "VARCHAR",
    "dst_port": "INTEGER", "protocol": "VARCHAR", "user": "VARCHAR",
    "classification": "VARCHAR", "vuln_id": "VARCHAR", "patched": "BOOLEAN",
    "policy_allowed": "BOOLEAN", "message": "VARCHAR",
}


def run_rampart(binary, src, out, threads, rules):
    env = dict(os.environ, TOKIO_WORKER_THREADS=str(threads), RAMPART_LOG="warn",
               RAMPART_RULES__ENABLED="true" if rules else "false")
    t = time.perf_counter()
    subprocess.run([binary, "run", "--source", src, "--archive", out, "--until-end"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    rows = int(subprocess.run(
        [binary, "query", "--format", "csv", "--archive", out, "SELECT count(*) FROM events"],
        check=True, capture_output=True, text=True, env=env).stdout.splitlines()[1])
    return elapsed, rows


def run_duckdb(src, out, threads):
    cols = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    t = time.perf_counter()
    con.execute(f"""
        COPY (
            SELECT *, strftime(ts, '%Y-%m-%d') AS date, strftime(ts, '%H') AS hour
            FROM read_json('{src}', format = 'newline_delimited', ignore_errors = true,
                           maximum_object_size = 67108864, columns = {{{cols}}})
        ) TO '{out}' (FORMAT parquet, PARTITION_BY (date, hour), COMPRESSION zstd)
    """)
    elapsed = time.perf_counter() - t
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet')").fetchone()[0]
    con.close()
    return elapsed, rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rampart", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--work", required=True)
    a = p.parse_args()

    size = os.path.getsize(a.input)
    with open(a.input, "rb") as f:
        lines = sum(1 for _ in f)
    r_times, w_times, d_times = [], [], []
    r_rows = w_rows = d_rows = 0
    for i in range(a.runs):
        for name in ("rampart", "rampart+rules", "duckdb"):
            out = os.path.join(a.work, f"{name}-{i}")
            if name == "rampart":
                t, r_rows = run_rampart(a.rampart, a.input, out, a.threads, rules=False)
                r_times.append(t)
            elif name == "rampart+rules":
                t, w_rows = run_rampart(a.rampart, a.input, out, a.threads, rules=True)
                w_times.append(t)
            else:
                t, d_rows = run_duckdb(a.input, out, a.threads)
                d_times.append(t)
            shutil.rmtree(out, ignore_errors=True)
    r, w, d = (statistics.median(x) for x in (r_times, w_times, d_times))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"duckdb {duckdb.__version__}; threads {a.threads}")
    print(f"input: {lines} lines, {size / 1048576:.1f} MiB; {a.runs} interleaved runs each\n")
    print("| engine | median s | events/s | MiB/s | rows written | all runs (s) |")
    print("|---|---|---|---|---|---|")
    runs = (("rampart (archive only)", r, r_times, r_rows),
            ("rampart (archive + windows + rules)", w, w_times, w_rows),
            ("duckdb (archive only)", d, d_times, d_rows))
    for name, m, ts, rows in runs:
        print(f"| {name} | {m:.2f} | {lines / m:,.0f} | {size / 1048576 / m:.1f} | {rows} | "
              f"{', '.join(f'{t:.2f}' for t in ts)} |")
    print(f"\nratio, archive only (rampart throughput / duckdb throughput): {d / r:.2f}x")
    print(f"windows + rules cost: {(w - r) / lines * 1e6:.2f} us per event "
          f"({(w - r) / r * 100:.0f}% over archive only)")


if __name__ == "__main__":
    main()
