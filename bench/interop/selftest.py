"""Self-test of the check itself: files that must FAIL do.

    selftest.py --scratch DIR --old-python OLD_PY --new-python NEW_PY

Writes, with the NEW venv's pyarrow: a file whose embedded Arrow schema has view types
(`string_view`, as cxr once wrote through polars), a file whose `targets` disagree with
`labels` on one row, and a correct export-like file. Then reads them with pyarrow 14 and
DuckDB through read.py, judges them with compare.py, and checks the verdicts:
pyarrow 14 must report `ArrowInvalid: Unrecognized type` on the view-typed file, every
reader must catch the wrong targets, and the correct file must pass. Exits non-zero
(and says why) when the check would have hidden a failure.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
         "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax"]


def write_files(d):
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = [["Effusion"], [], ["Mass", "Nodule"], ["Atelectasis", "Pneumothorax"]]
    targets = [[1.0 if f in l else 0.0 for f in ORDER] for l in labels]
    meta = {"cxr.targets": json.dumps(ORDER), "cxr.query": "SELECT 1", "cxr.version": "selftest",
            "cxr.manifest_sha256": "0" * 64}

    def table(index_type, tg):
        return pa.table({
            "image_index": pa.array(["a.png", "b.png", "c.png", "d.png"], index_type),
            "labels": pa.array(labels, pa.list_(pa.string())),
            "targets": pa.array(tg, pa.list_(pa.float32(), 14)),
        }).replace_schema_metadata(meta)

    units = []

    def unit(name, t, expect):
        path = os.path.join(d, name)
        pq.write_table(t, path)
        units.append({"name": name, "path": path, "kind": "file", "files": [path], "expected_rows": 4,
                      "expected_why": "selftest", "targets": True, "partition": None, "writer": "selftest",
                      "targets_order": ORDER, "kv": {}, "expect": expect})

    unit("good.parquet", table(pa.string(), targets), {})
    unit("view_types.parquet", table(pa.string_view(), targets), {"pyarrow14": "Unrecognized type"})
    bad = [list(r) for r in targets]
    bad[2][ORDER.index("Nodule")] = 0.0
    unit("wrong_targets.parquet", table(pa.string(), bad),
         {"pyarrow14": "targets != labels", "duckdb": "targets != labels"})
    return units


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--old-python", required=True)
    ap.add_argument("--new-python", required=True)
    a = ap.parse_args()
    d = os.path.join(a.scratch, "selftest")
    os.makedirs(os.path.join(d, "results"), exist_ok=True)
    units = write_files(d)
    plan = os.path.join(d, "plan.json")
    with open(plan, "w") as f:
        json.dump({"units": units, "cxr_failures": [], "expectations": {}}, f)
    readers = [("pyarrow14", a.old_python), ("duckdb", a.new_python)]
    for r, py in readers:
        subprocess.run([py, os.path.join(HERE, "read.py"), "--plan", plan, "--reader", r,
                        "--out", os.path.join(d, "results", r + ".json")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    out = subprocess.run([a.new_python, os.path.join(HERE, "compare.py"), "--plan", plan, "--results",
                          os.path.join(d, "results"), "--readers", ",".join(r for r, _ in readers)],
                         stdout=subprocess.PIPE, text=True).stdout
    labels = {"pyarrow14": "pyarrow 14", "duckdb": "duckdb"}
    problems = []
    for u in units:
        for r, _ in readers:
            line = next((l for l in out.splitlines() if f" {u['name']} " in l and labels[r] in l), "")
            want = u["expect"].get(r)
            if want is None and not line.startswith("OK"):
                problems.append(f"{u['name']} / {r}: should pass: {line or '(no line)'}")
            if want is not None and not (line.startswith("FAIL") and want in line):
                problems.append(f"{u['name']} / {r}: should FAIL with '{want}': {line or '(no line)'}")
    for p in problems:
        print(f"selftest: {p}")
    print(f"selftest: {'ok: the check reports view types and wrong targets' if not problems else 'FAILED'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
