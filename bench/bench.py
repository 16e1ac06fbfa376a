"""cxr benchmarks. Run through bench/run.sh (release build, DuckDB install).

Prints, per section:
  ingest  whole-process `cxr ingest --no-images` of the shipped metadata vs DuckDB
          turning the same CSV into one Parquet file;
  sql     whole-process `cxr sql` latency on the top-co-occurring-pairs and the
          consecutive-study-transitions questions vs the DuckDB CLI on the same
          Parquet files, and the ratios;
  pixels  `cxr ingest --images` on a synthetic tar of 20,000 224x224 PNGs vs the
          read-then-decode reference (examples/read_decode.rs), images/s, ratio,
          peak RSS.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CXR = os.path.join(ROOT, "target", "release", "cxr")
REF = os.path.join(ROOT, "target", "release", "examples", "read_decode")
DATA = os.path.join(ROOT, "data")
DUCKDB = shutil.which("duckdb")
OUT = os.path.join(ROOT, "bench", "out")


def run(cmd, **kw):
    """Runs a command, returns (seconds, stdout)."""
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    return dt, p.stdout


def median_time(cmd, n=7, **kw):
    run(cmd, **kw)  # warm the page cache
    return statistics.median(run(cmd, **kw)[0] for _ in range(n))


def peak_rss_mib(cmd):
    """Runs cmd under GNU time; returns (seconds, its peak RSS in MiB, stdout)."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    return dt, int(p.stderr.strip().splitlines()[-1]) / 1024.0, p.stdout


def line(label, value):
    print(f"  {label:<48} {value}")


def bench_ingest():
    print("ingest (shipped metadata, whole process)")
    wh = os.path.join(OUT, "wh-ingest")
    cxr_s = median_time([CXR, "ingest", "--no-images", "--warehouse", wh], n=5)
    line("cxr ingest --no-images (7 tables)", f"{cxr_s:.3f} s")
    if DUCKDB:
        csv = os.path.join(DATA, "Data_Entry_2017_v2020.csv.gz")
        pq = os.path.join(OUT, "duck.parquet")
        sql = f"COPY (SELECT * FROM read_csv('{csv}')) TO '{pq}' (FORMAT parquet, COMPRESSION zstd)"
        duck_s = median_time([DUCKDB, "-c", sql], n=5)
        line("duckdb CSV -> one Parquet file", f"{duck_s:.3f} s")
        line("ratio cxr / duckdb (target <= 1.0)", f"{cxr_s / duck_s:.2f}")


TOP_PAIRS = """
SELECT a.label AS label_a, b.label AS label_b, COUNT(*) AS n_ab
FROM {findings} a JOIN {findings} b ON a.image_index = b.image_index AND a.label < b.label
GROUP BY a.label, b.label ORDER BY n_ab DESC, label_a, label_b LIMIT 10
"""

TRANSITIONS = """
WITH s AS (
  SELECT patient_id, follow_up, image_index,
         LAG(image_index) OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) AS prev
  FROM {images}
)
SELECT f.label, COUNT(*) AS appeared
FROM s JOIN {findings} f ON f.image_index = s.image_index
WHERE s.prev IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM {findings} g WHERE g.image_index = s.prev AND g.label = f.label)
GROUP BY f.label ORDER BY appeared DESC, f.label
"""


def bench_sql():
    print("sql (whole-process latency, median of 7)")
    wh = os.path.join(OUT, "wh-sql")
    run([CXR, "ingest", "--no-images", "--warehouse", wh])
    for name, q in [("top co-occurring pairs", TOP_PAIRS), ("consecutive-study transitions", TRANSITIONS)]:
        cxr_sql = q.format(findings="findings", images="images")
        cxr_s = median_time([CXR, "sql", "--warehouse", wh, "--format", "csv", cxr_sql])
        line(f"cxr sql: {name}", f"{cxr_s:.3f} s")
        if DUCKDB:
            duck_sql = q.format(
                findings=f"read_parquet('{wh}/findings.parquet')",
                images=f"read_parquet('{wh}/images.parquet')",
            )
            duck_s = median_time([DUCKDB, "-csv", "-c", duck_sql])
            same = run([CXR, "sql", "--warehouse", wh, "--format", "csv", cxr_sql])[1].split()[1:] == \
                run([DUCKDB, "-csv", "-c", duck_sql])[1].split()[1:]
            line(f"duckdb: {name}", f"{duck_s:.3f} s")
            line(f"ratio cxr / duckdb (target <= 1.0){'' if same else ' RESULTS DIFFER'}", f"{cxr_s / duck_s:.2f}")


def bench_pixels(count=20000):
    print(f"pixels (synthetic tar of {count:,} 224x224 grey PNGs)")
    tar = os.path.join(OUT, f"synth-{count}.tar")
    if not os.path.exists(tar):
        run([CXR, "synth", "images", "--count", str(count), "--out", tar])
    size_mb = os.path.getsize(tar) / 1e6
    line("tar size", f"{size_mb:.0f} MB ({size_mb * 1e3 / count:.1f} KB per image)")
    run([REF, tar])  # warm the page cache
    ref = json.loads(run([REF, tar])[1])
    line("reference: read all members", f"{ref['read_s']:.3f} s")
    line("reference: parallel decode + histogram", f"{ref['decode_s']:.3f} s")
    line("reference: read-then-decode rate", f"{ref['images_per_s']:.0f} images/s")
    wh = os.path.join(OUT, "wh-pixels")
    dt, rss, _ = peak_rss_mib([CXR, "ingest", "--no-bbox", "--no-expert", "--images", tar, "--warehouse", wh])
    # Pixel seconds alone, from the ingest's own summary in the manifest-free output.
    rate = count / dt
    line("cxr ingest --images (whole process, incl. CSVs)", f"{dt:.3f} s, {rate:.0f} images/s")
    line("ratio to reference (target >= 0.80)", f"{rate / ref['images_per_s']:.2f}")
    line("peak RSS (target < 300 MiB)", f"{rss:.0f} MiB")


def bench_interop():
    print("interop (pyarrow 14 and newest + pandas, polars, DuckDB, Spark 3.5 read every Parquet file cxr writes)")
    subprocess.run([os.path.join(ROOT, "bench", "interop", "run.sh"), CXR], check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    sections = sys.argv[1:] or ["ingest", "sql", "pixels", "interop"]
    print(f"cxr benchmarks on {os.cpu_count()} cores; duckdb: {DUCKDB or 'not installed'}")
    for s in sections:
        {"ingest": bench_ingest, "sql": bench_sql, "pixels": bench_pixels, "interop": bench_interop}[s]()


if __name__ == "__main__":
    main()
