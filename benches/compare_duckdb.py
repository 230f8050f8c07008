"""Times Rampart and DuckDB on the same jobs, interleaved, and prints medians and ratios.

Two jobs, each done by both engines on the same file with the same thread count:

- archive: read a JSON-lines file of security events, type every contract column, and
  write zstd Parquet partitioned by UTC date and hour;
- archive + windows + rules: the same, plus the 5-minute attack counts per resource and
  category (`attack_rates`) and the policy hits of the four rules (`policy_hits`), each
  written as Parquet. DuckDB computes them in SQL over the whole file at once (the
  `prev` window of `attack_increase` by a self-join on the window before).

Rampart additionally validates each message strictly, dead-letters malformed ones with
their raw bytes, keeps unknown fields and source coordinates, applies the watermark and
lateness per event, tracks violations and writes alert lines, and commits through a
hashed manifest; DuckDB skips malformed lines (ignore_errors), keeps only the typed
contract columns and does none of the rest. The comparison therefore flatters DuckDB.
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
    sql = ("SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM attack_rates) AS a, "
           "(SELECT count(*) FROM policy_hits) AS p")
    rows = subprocess.run([binary, "query", "--format", "csv", "--archive", out, sql],
                          check=True, capture_output=True, text=True, env=env).stdout
    return elapsed, " / ".join(rows.splitlines()[1].split(","))


# The windows and the four rules of sql/windows and sql/rules, over the whole input at
# once: 5-minute windows, a 25% increase over a previous window of at least 10 events.
WINDOWS_AND_RULES = """
    CREATE TEMP TABLE counts AS
        SELECT time_bucket(INTERVAL 5 MINUTE, ts) AS window_start, resource_id, category,
               max(workload) AS workload, count(*) AS event_count
        FROM ev WHERE category IN ('brute_force', 'ddos')
        GROUP BY ALL;
    COPY (
        SELECT window_start, window_start + INTERVAL 5 MINUTE AS window_end, resource_id,
               workload, category, event_count, event_count / 5.0 AS rate_per_min,
               strftime(window_start, '%Y-%m-%d') AS date, strftime(window_start, '%H') AS hour
        FROM counts
    ) TO '{out}/attack_rates' (FORMAT parquet, PARTITION_BY (date, hour), COMPRESSION zstd);
    COPY (
        WITH hits AS (
            SELECT time_bucket(INTERVAL 5 MINUTE, ts) AS window_start, resource_id, workload,
                   'unclassified_data' AS rule_id
            FROM ev WHERE resource_type IN ('storage', 'database')
                      AND (classification IS NULL OR classification = '')
            UNION ALL
            SELECT time_bucket(INTERVAL 5 MINUTE, ts), resource_id, workload, 'security_health'
            FROM ev WHERE resource_type = 'vm' AND category IN ('malware', 'vulnerability')
                      AND patched IS NOT TRUE
            UNION ALL
            SELECT time_bucket(INTERVAL 5 MINUTE, ts), resource_id, workload,
                   'network_vulnerability'
            FROM ev WHERE category = 'network_access' AND policy_allowed = false
        ), per_window AS (
            SELECT window_start, resource_id, rule_id, max(workload) AS workload,
                   NULL AS category, count(*) AS hit_count, NULL::BIGINT AS prev_count
            FROM hits GROUP BY ALL
            UNION ALL
            SELECT c.window_start, c.resource_id, 'attack_increase', c.workload, c.category,
                   c.event_count, p.event_count
            FROM counts c JOIN counts p
              ON p.window_start = c.window_start - INTERVAL 5 MINUTE
             AND p.resource_id = c.resource_id AND p.category = c.category
            WHERE c.event_count * 100 >= p.event_count * 125 AND p.event_count >= 10
        )
        SELECT *, window_start + INTERVAL 5 MINUTE AS window_end,
               strftime(window_start, '%Y-%m-%d') AS date, strftime(window_start, '%H') AS hour
        FROM per_window
    ) TO '{out}/policy_hits' (FORMAT parquet, PARTITION_BY (date, hour), COMPRESSION zstd);
"""


def run_duckdb(src, out, threads, rules):
    cols = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    read = f"""read_json('{src}', format = 'newline_delimited', ignore_errors = true,
                         maximum_object_size = 67108864, columns = {{{cols}}})"""
    t = time.perf_counter()
    if rules:
        con.execute(f"CREATE TEMP TABLE ev AS SELECT * FROM {read}")
        read = "ev"
    os.makedirs(out, exist_ok=True)
    con.execute(f"""
        COPY (
            SELECT *, strftime(ts, '%Y-%m-%d') AS date, strftime(ts, '%H') AS hour
            FROM {read}
        ) TO '{out}/events' (FORMAT parquet, PARTITION_BY (date, hour), COMPRESSION zstd)
    """)
    if rules:
        con.execute(WINDOWS_AND_RULES.format(out=out))
    elapsed = time.perf_counter() - t
    counts = []
    for table in ("events", "attack_rates", "policy_hits"):
        files = os.path.join(out, table, "**", "*.parquet")
        counts.append(con.execute(f"SELECT count(*) FROM read_parquet('{files}')").fetchone()[0]
                      if os.path.isdir(os.path.join(out, table)) else 0)
    rows = " / ".join(str(c) for c in counts)
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
    jobs = {
        "rampart (archive only)": lambda out: run_rampart(a.rampart, a.input, out, a.threads, False),
        "duckdb (archive only)": lambda out: run_duckdb(a.input, out, a.threads, False),
        "rampart (archive + windows + rules)":
            lambda out: run_rampart(a.rampart, a.input, out, a.threads, True),
        "duckdb (archive + windows + rules)":
            lambda out: run_duckdb(a.input, out, a.threads, True),
    }
    times = {name: [] for name in jobs}
    rows = {}
    for i in range(a.runs):
        for n, (name, job) in enumerate(jobs.items()):
            out = os.path.join(a.work, f"job{n}-{i}")
            t, rows[name] = job(out)
            times[name].append(t)
            shutil.rmtree(out, ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"duckdb {duckdb.__version__}; threads {a.threads}")
    print(f"input: {lines} lines, {size / 1048576:.1f} MiB; {a.runs} interleaved runs each\n")
    print("| engine | median s | events/s | MiB/s | rows: events / attack_rates / policy_hits | all runs (s) |")
    print("|---|---|---|---|---|---|")
    for name, ts in times.items():
        m = med[name]
        print(f"| {name} | {m:.2f} | {lines / m:,.0f} | {size / 1048576 / m:.1f} | {rows[name]} | "
              f"{', '.join(f'{t:.2f}' for t in ts)} |")
    for job in ("archive only", "archive + windows + rules"):
        ratio = med[f"duckdb ({job})"] / med[f"rampart ({job})"]
        print(f"\nratio, {job} (rampart throughput / duckdb throughput): {ratio:.2f}x")
    r, w = med["rampart (archive only)"], med["rampart (archive + windows + rules)"]
    print(f"\nrampart's windows + rules cost: {(w - r) / lines * 1e6:.2f} us per event "
          f"({(w - r) / r * 100:.0f}% over archive only)")


if __name__ == "__main__":
    main()
