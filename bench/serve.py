"""`cxr serve` against a real PostgreSQL 15 holding the same tables, both over psycopg.

Run through bench/serve.sh (release build, a private PostgreSQL cluster, a virtual
environment with psycopg and pyarrow).

PostgreSQL gets its best form: the NIH `images` and `findings` tables loaded from the
warehouse's own Parquet files, with indexes on images(image_index),
images(patient_id, follow_up), findings(image_index) and findings(label), ANALYZEd,
with work_mem = 64MB. Each question runs RUNS times on one open connection per
server, interleaved (cxr, PostgreSQL, PostgreSQL, cxr, ...); p50 and p99 are of the
client's wall time per statement, rows fetched. Answers are compared as sorted rows.
Then CLIENTS connections run a mix of the questions against cxr for SECONDS: errors,
statements, p50/p99 and the server's peak RSS are printed.

usage: serve.py CXR_PORT CXR_PID PG_DSN [--runs N] [--clients N] [--seconds S]
"""

import statistics
import sys
import threading
import time

import psycopg

QUESTIONS = [
    ("cohort rows: F, 40-60, PA, Effusion without Pneumothorax",
     """SELECT image_index FROM images
        WHERE sex = 'F' AND age BETWEEN 40 AND 60 AND view_position = 'PA'
          AND effusion AND NOT pneumothorax"""),
    ("co-occurrence within a cohort (PA women)",
     """SELECT a.label, b.label, count(*) AS n
        FROM findings a
        JOIN findings b ON a.image_index = b.image_index AND a.label < b.label
        JOIN images i ON i.image_index = a.image_index
        WHERE i.sex = 'F' AND i.view_position = 'PA'
        GROUP BY a.label, b.label"""),
    ("follow-up: Effusion appearing between consecutive studies, by sex",
     """SELECT sex, sum(CASE WHEN effusion AND NOT previous THEN 1 ELSE 0 END) AS appeared,
               sum(CASE WHEN previous AND NOT effusion THEN 1 ELSE 0 END) AS resolved
        FROM (SELECT sex, effusion,
                     lag(effusion) OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) AS previous
              FROM images) AS studies
        WHERE previous IS NOT NULL
        GROUP BY sex"""),
    ("a patient's timeline (patient 11)",
     """SELECT image_index, follow_up, age, view_position, finding_labels
        FROM images WHERE patient_id = 11 ORDER BY follow_up"""),
]


def timed(conn, sql):
    started = time.perf_counter()
    rows = conn.execute(sql).fetchall()
    return time.perf_counter() - started, rows


def normalise(rows):
    return sorted(tuple(str(v) for v in row) for row in rows)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def compare(cxr_dsn, pg_dsn, runs):
    print(f"{'question':62} {'cxr p50':>9} {'pg p50':>9} {'ratio':>6} {'cxr p99':>9} {'pg p99':>9} answers")
    ok = True
    with psycopg.connect(cxr_dsn) as cxr, psycopg.connect(pg_dsn) as pg:
        for name, sql in QUESTIONS:
            timed(cxr, sql), timed(pg, sql)  # warm-up
            cxr_times, pg_times = [], []
            answers = None
            for i in range(runs):
                order = [(cxr, cxr_times), (pg, pg_times)]
                if i % 2:
                    order.reverse()
                results = {}
                for conn, times in order:
                    t, rows = timed(conn, sql)
                    times.append(t)
                    results[id(conn)] = normalise(rows)
                answers = results[id(cxr)] == results[id(pg)]
                if not answers:
                    break
            ok &= answers
            c50, p50 = statistics.median(cxr_times), statistics.median(pg_times)
            print(f"{name:62} {c50*1e3:8.1f}ms {p50*1e3:8.1f}ms {c50/p50:6.2f} "
                  f"{percentile(cxr_times, 99)*1e3:8.1f}ms {percentile(pg_times, 99)*1e3:8.1f}ms "
                  f"{'equal' if answers else 'DIFFERENT'}")
    return ok


def concurrent(cxr_dsn, pid, clients, seconds):
    latencies, errors, lock = [], [], threading.Lock()
    stop = time.monotonic() + seconds

    def client(k):
        with psycopg.connect(cxr_dsn, autocommit=True) as conn:
            i = k
            while time.monotonic() < stop:
                _, sql = QUESTIONS[i % len(QUESTIONS)]
                i += 1
                try:
                    t, _ = timed(conn, sql)
                    with lock:
                        latencies.append(t)
                except Exception as e:  # noqa: BLE001 - every error is counted
                    with lock:
                        errors.append(str(e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"\n{clients} concurrent clients, {seconds} s, mix of the questions above against cxr:")
    print(f"  statements {len(latencies)}, errors {len(errors)}, "
          f"p50 {percentile(latencies, 50)*1e3:.1f} ms, p99 {percentile(latencies, 99)*1e3:.1f} ms, "
          f"server peak RSS {peak_rss_mib(pid):.0f} MiB")
    for e in sorted(set(errors))[:5]:
        print("  error:", e)
    return not errors


def main():
    args = sys.argv[1:]
    options = {"--runs": 30, "--clients": 16, "--seconds": 60}
    positional = []
    while args:
        a = args.pop(0)
        if a in options:
            options[a] = int(args.pop(0))
        else:
            positional.append(a)
    port, pid, pg_dsn = positional
    cxr_dsn = f"host=127.0.0.1 port={port} user=cxr dbname=cxr"
    ok = compare(cxr_dsn, pg_dsn, options["--runs"])
    ok &= concurrent(cxr_dsn, int(pid), options["--clients"], options["--seconds"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
