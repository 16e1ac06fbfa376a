"""Judges what the readers saw: one line per (file, reader), then the summary line.

A (file, reader) passes when the reader read the file and
- its row count equals the plan's independent expectation (or, where none is known,
  the count most readers agree on);
- its column names and type classes equal those most readers agree on (no duplicates);
- a partitioned dataset shows the partition column once, with the expected counts;
- where a `targets` column is promised (every export): it is there, holds Float32, and
  equals 1.0 exactly where `labels` has the finding of the file's `cxr.targets` order
  and 0.0 elsewhere;
- pyarrow and DuckDB find cxr.targets, cxr.query, cxr.version and
  cxr.manifest_sha256 in the file's key-value metadata of an export.
"""

import argparse
import json
import os
import sys
from collections import Counter

PROVENANCE = ["cxr.targets", "cxr.query", "cxr.version", "cxr.manifest_sha256"]
LABELS = {
    "pyarrow14": "pyarrow 14 + pandas 2.1",
    "pyarrow_new": "pyarrow new + pandas",
    "polars": "polars",
    "duckdb": "duckdb",
    "spark": "spark 3.5",
}


def schema_of(res):
    return tuple(sorted((c[0], c[1]) for c in res["columns"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--readers", required=True)
    a = ap.parse_args()
    with open(a.plan) as f:
        plan = json.load(f)
    readers = [r for r in a.readers.split(",") if r]
    results, versions = {}, {}
    for r in readers:
        p = os.path.join(a.results, r + ".json")
        try:
            with open(p) as f:
                results[r] = json.load(f)["results"]
        except (OSError, ValueError):
            results[r] = {}
        for res in results[r].values():
            if "versions" in res:
                versions[r] = res["versions"]
                break

    passed = failed = 0
    lines = []
    fail_table = {}  # file -> {reader: reason}

    def emit(ok, name, reader, detail):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            fail_table.setdefault(name, {})[reader] = detail
        lines.append(f"{'OK  ' if ok else 'FAIL'} {name:<46} {LABELS.get(reader, reader):<24} {detail}")

    for f in plan.get("cxr_failures", []):
        emit(False, f["what"], "cxr", f"{f['command']}: {f['error']}")

    exp_tables = plan.get("expectations", {})
    mt, nih = exp_tables.get("manifest_tables"), exp_tables.get("nih_rows", {})
    if mt is not None:
        wrong = {k: (v, nih[k]) for k, v in mt.items() if k in nih and v != nih[k]}
        emit(not wrong, "wh/manifest.json", "cxr",
             "table row counts match the NIH release" if not wrong else f"row counts differ (manifest, NIH): {wrong}")

    for unit in plan["units"]:
        name = unit["name"]
        got = {r: results[r].get(name, {"error": "no result (reader crashed?)"}) for r in readers}
        good = {r: v for r, v in got.items() if "error" not in v}
        schemas = Counter(schema_of(v) for v in good.values())
        consensus = schemas.most_common(1)[0][0] if schemas else None
        exp_rows = unit.get("expected_rows")
        if exp_rows is None:
            counts = Counter(v["rows"] for v in good.values())
            ref_rows = counts.most_common(1)[0][0] if counts else None
            rows_why = "the readers' majority"
        else:
            ref_rows, rows_why = exp_rows, unit.get("expected_why") or "expected"
        part = unit.get("partition")
        for r in readers:
            v = got[r]
            if "error" in v:
                emit(False, name, r, v["error"])
                continue
            why = []
            if v["rows"] != ref_rows:
                why.append(f"{v['rows']} rows, expected {ref_rows} ({rows_why})")
            if "pandas_rows" in v and v["pandas_rows"] != v["rows"]:
                why.append(f"pandas has {v['pandas_rows']} rows, pyarrow {v['rows']}")
            names = [c[0] for c in v["columns"]]
            dups = sorted(n for n, c in Counter(names).items() if c > 1)
            if dups:
                why.append(f"duplicate columns {dups}")
            mine = dict((c[0], c[1]) for c in v["columns"])
            ref = dict(consensus) if consensus else {}
            if schema_of(v) != consensus:
                diffs = []
                for n in sorted(set(mine) | set(ref)):
                    if mine.get(n) != ref.get(n):
                        raw = next((c[2] for c in v["columns"] if c[0] == n), None)
                        diffs.append(f"{n}: {mine.get(n, 'missing')}{f' ({raw})' if raw else ''} vs {ref.get(n, 'absent')}")
                why.append("columns differ from the other readers: " + "; ".join(diffs[:6]))
            if part:
                col = part["column"]
                if names.count(col) != 1:
                    why.append(f"partition column {col!r} appears {names.count(col)} times")
                elif part.get("counts") is not None and v.get("partition_counts") != part["counts"]:
                    why.append(f"{col} counts {v.get('partition_counts')} != {part['counts']}")
            if unit.get("targets"):
                if "targets" not in mine:
                    why.append("no targets column")
                else:
                    if not v.get("targets_item_float32", False):
                        raw = next(c[2] for c in v["columns"] if c[0] == "targets")
                        why.append(f"targets is {raw}, not 14 x Float32")
                    tc = v.get("targets_check")
                    if tc is None:
                        why.append("targets not checked (no cxr.targets order or no labels)")
                    elif tc["mismatches"]:
                        why.append(f"targets != labels on {tc['mismatches']} of {tc['rows']} rows"
                                   + (f" ({tc['example']})" if tc.get("example") else ""))
                if "kv_keys" in v:
                    missing = [k for k in PROVENANCE if k not in v["kv_keys"]]
                    if missing:
                        why.append(f"key-value metadata lacks {missing}")
                if "schema_meta_keys" in v and "cxr.targets" not in v["schema_meta_keys"]:
                    why.append("Arrow schema metadata lacks cxr.targets")
            if why:
                emit(False, name, r, "; ".join(why))
            else:
                extra = ""
                tc = v.get("targets_check")
                if tc:
                    extra = f", targets = labels ({tc['by']})"
                if part:
                    extra += f", {part['column']}= partitions ok"
                emit(True, name, r, f"{v['rows']} rows, {len(v['columns'])} columns{extra}")

    print("readers: " + "; ".join(
        f"{LABELS.get(r, r)} [{', '.join(f'{k} {x}' for k, x in versions.get(r, {}).items() if x)}]" for r in readers))
    for line in lines:
        print(line)
    if fail_table:
        print()
        print("failures by file and reader:")
        width = max(len(n) for n in fail_table)
        cols = (["cxr"] if any("cxr" in by for by in fail_table.values()) else []) + readers
        print(f"  {'file':<{width}}  " + "  ".join(f"{r:<11}" for r in cols))
        for n, by in fail_table.items():
            cells = ["FAIL" if r in by else ("-" if "cxr" in by and r != "cxr" else "ok") for r in cols]
            print(f"  {n:<{width}}  " + "  ".join(f"{c:<11}" for c in cells))
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
