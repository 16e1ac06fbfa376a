"""Interop check for `cxr export`: pyarrow and DuckDB read what cxr writes.

Run through `bench/run.sh interop` (it builds cxr and installs the DuckDB CLI; this
script installs pyarrow with pip when missing). Exits non-zero on any mismatch.
"""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CXR = os.path.join(ROOT, "target", "release", "cxr")


def sh(cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def main():
    try:
        import pyarrow.parquet as pq  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "pyarrow"], check=True)
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    tmp = tempfile.mkdtemp()
    wh = os.path.join(tmp, "wh")
    sh([CXR, "ingest", "--warehouse", wh])
    manifest = os.path.join(tmp, "pa.parquet")
    sh([CXR, "export", "-w", wh, "--view", "PA", "--first-study", "--out", manifest])
    part = os.path.join(tmp, "ds")
    sh([CXR, "export", "-w", wh, "--partition-by", "split", "--out", part])
    failures = []

    def check(what, ok):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    t = pq.read_table(manifest)
    check("pyarrow: 28,868 rows", t.num_rows == 28868)
    check("pyarrow: targets is fixed_size_list<float>[14]", str(t.schema.field("targets").type) in
          ("fixed_size_list<item: float not null>[14]", "fixed_size_list<item: float>[14]"))
    check("pyarrow: labels is list<string>", str(t.schema.field("labels").type).startswith("list<item: string"))
    file_meta = pq.read_metadata(manifest).metadata or {}
    check("pyarrow: provenance in the file metadata", b"cxr.targets" in file_meta and b"cxr.manifest_sha256" in file_meta)
    meta = t.schema.metadata or {}
    check("pyarrow: provenance in the schema metadata", b"cxr.targets" in meta and b"cxr.query" in meta)
    labels = t.column("labels").to_pylist()
    targets = t.column("targets").to_pylist()
    check("pyarrow: targets equal the labels", all(sum(v) == len(l) for v, l in zip(targets, labels)))
    d = ds.dataset(part, format="parquet", partitioning="hive").to_table()
    names = d.schema.names
    check("pyarrow dataset: split appears once", names.count("split") == 1)
    counts = d.group_by("split").aggregate([("image_index", "count")]).to_pydict()
    got = dict(zip(counts["split"], counts["image_index_count"]))
    check("pyarrow dataset: partition values intact", got == {"train_val": 86524, "test": 25596})
    duck = shutil.which("duckdb")
    if duck:
        out = sh([duck, "-csv", "-noheader", "-c",
                  f"SELECT split, count(*) FROM read_parquet('{part}/*/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY 1"])
        check("duckdb: partition values intact", out.split() == ["test,25596", "train_val,86524"])
        out = sh([duck, "-csv", "-noheader", "-c", f"SELECT count(*), sum(len(labels)) FROM '{manifest}'"])
        check("duckdb: manifest rows", out.strip().split(",")[0] == "28868")
    else:
        print("  duckdb CLI not installed: DuckDB checks skipped")
    shutil.rmtree(tmp)
    print(f"{len(failures) == 0 and 'interop ok' or 'interop FAILED'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
