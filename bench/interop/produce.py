"""Runs cxr to write every kind of Parquet file it can, and records for each file what a
reader must find there: the row count expected independently of cxr (known NIH counts, or
the same selection computed by DuckDB straight from the warehouse's Parquet files), the
partition values of a partitioned export, and whether a `targets` column is promised.

Writes <scratch>/plan.json for read.py and compare.py. Runs in the NEW venv (DuckDB).
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

# Row counts of the NIH release (SCHEMA.md, README.md), independent of any reader.
NIH_ROWS = {
    "images": 112_120,
    "findings": 81_176,
    "patients": 30_805,
    "bboxes": 984,
    "expert_labels": 4_376,
    "data_issues": 123,
    "pixel_stats": 24,
    "pixel_errors": 0,
    "splits": 30_805,
}

# SQL run by `cxr sql --out` and, word for word, by DuckDB over the warehouse files.
# Each has a string column, a list column and an aggregate (or reads a built-in view).
SQL_QUERIES = {
    # aggregate per patient, joined to a list column (labels_ever) and a string (sex)
    "q_patients": """
SELECT p.patient_id, p.sex, p.labels_ever, a.n_images, a.mean_age, a.n_effusion
FROM patients p
JOIN (SELECT patient_id, COUNT(*) AS n_images, AVG(age) AS mean_age,
             SUM(CASE WHEN effusion THEN 1 ELSE 0 END) AS n_effusion
      FROM images GROUP BY patient_id) a ON a.patient_id = p.patient_id
WHERE a.n_images >= 10
ORDER BY p.patient_id""",
    # rows with `labels` (List(Utf8)), strings and a window aggregate
    "q_labels": """
SELECT image_index, view_position, labels, n_labels,
       COUNT(*) OVER (PARTITION BY patient_id) AS patient_images
FROM images
WHERE n_labels >= 3
ORDER BY image_index""",
    # a plain GROUP BY with COUNT / COUNT DISTINCT / AVG
    "q_findings": """
SELECT label, COUNT(*) AS images, COUNT(DISTINCT patient_id) AS patients
FROM findings
GROUP BY label
ORDER BY images DESC""",
}

# The built-in views, read whole: their SQL lives in src/sql/views/ and DuckDB runs the
# same text with the table names filled in.
VIEW_QUERIES = {"q_cooccurrence": "cooccurrence", "q_followups": "followups"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Producer:
    def __init__(self, cxr, scratch, repo):
        self.cxr = cxr
        self.scratch = scratch
        self.repo = repo
        self.wh = os.path.join(scratch, "wh")
        self.units = []  # what readers read
        self.failures = []  # cxr commands that failed: reported as FAIL lines
        self.cxr_log = open(os.path.join(scratch, "logs", "cxr.log"), "a")
        self.help = {}

    def rel(self, p):
        return os.path.relpath(p, self.scratch)

    def run(self, what, args, out_paths=()):
        """Runs cxr ARGS in the repository (its default inputs are data/...)."""
        for p in out_paths:
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
        cmd = [self.cxr] + args
        self.cxr_log.write("$ " + " ".join(cmd) + "\n")
        self.cxr_log.flush()
        t = time.time()
        r = subprocess.run(cmd, cwd=self.repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.cxr_log.write(r.stdout[-4000:] + r.stderr[-4000:] + f"[exit {r.returncode}, {time.time() - t:.2f} s]\n")
        self.cxr_log.flush()
        if r.returncode != 0:
            msg = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
            self.failures.append({"what": what, "command": " ".join(args), "error": f"exit {r.returncode}: {msg}"})
            log(f"cxr {' '.join(args)}: exit {r.returncode}: {msg}")
            return False
        return True

    def has_command(self, name):
        if name not in self.help:
            r = subprocess.run([self.cxr, "help", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.help[name] = r.stdout if r.returncode == 0 else None
        return self.help[name] is not None

    def has_flag(self, command, flag):
        return self.has_command(command) and flag in self.help[command]

    def add(self, name, path, kind="file", expected=None, why=None, targets=False, partition=None, writer=None):
        self.units.append(
            {
                "name": name,
                "path": path,
                "kind": kind,
                "expected_rows": expected,
                "expected_why": why,
                "targets": targets,
                "partition": partition,
                "writer": writer,
            }
        )


def duck_expectations(wh):
    """A DuckDB connection with every warehouse table as a view over its Parquet file."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    for f in sorted(glob.glob(os.path.join(wh, "*.parquet"))):
        name = os.path.basename(f)[: -len(".parquet")]
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{f}')")
    for d in sorted(glob.glob(os.path.join(wh, "*"))):
        if os.path.isdir(d) and not os.path.basename(d).startswith("."):
            name = os.path.basename(d)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{d}/**/*.parquet')")
    return con


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxr", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--repo", required=True)
    a = ap.parse_args()
    P = Producer(a.cxr, a.scratch, a.repo)
    wh = P.wh
    t0 = time.time()
    # A reused scratch dir: start from nothing, so no file of an earlier run is read.
    for sub in ("wh", "split", "export", "sql", "cmd", "selftest", "results"):
        shutil.rmtree(os.path.join(a.scratch, sub), ignore_errors=True)

    # 1. The warehouse, from the shipped data (the default inputs).
    if not P.run("ingest", ["ingest", "-w", wh], [wh]):
        write_plan(a.scratch, P, {})
        return
    # 2. A random patient split (the `splits` table), when this cxr has `split`.
    split_ok = False
    if P.has_command("split"):
        split_out = os.path.join(a.scratch, "split", "splits.parquet")
        os.makedirs(os.path.dirname(split_out), exist_ok=True)
        split_ok = P.run(
            "split", ["split", "--seed", "7", "--fractions", "0.8,0.1,0.1", "-w", wh, "--out", split_out], [split_out]
        )
    manifest = {}
    try:
        with open(os.path.join(wh, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        P.failures.append({"what": "manifest.json", "command": "", "error": str(e)})
    # Schema version 2 keeps the tables of the current version in W/<manifest.data>/;
    # version 1 kept them in W itself.
    data = os.path.join(wh, manifest.get("data") or "")
    data = data.rstrip("/") if manifest.get("data") else wh

    con = duck_expectations(data)

    def q(sql):
        try:
            return con.execute(sql).fetchall()
        except Exception as e:  # noqa: BLE001 -- recorded, the file is still read
            log(f"duckdb expectation failed: {e}")
            return None

    def count(sql):
        rows = q(sql)
        return rows[0][0] if rows else None

    # 3. The warehouse tables themselves (every *.parquet, and table directories), of the
    # version manifest.json names. Shown as wh/NAME.
    for f in sorted(glob.glob(os.path.join(data, "*.parquet"))):
        name = os.path.basename(f)[: -len(".parquet")]
        exp = NIH_ROWS.get(name)
        P.add("wh/" + os.path.basename(f), f, expected=exp, why="NIH release" if exp is not None else None,
              writer="ingest" if name != "splits" else "split")
    for d in sorted(glob.glob(os.path.join(data, "*"))):
        if os.path.isdir(d) and not os.path.basename(d).startswith(".") and d != data:
            P.add("wh/" + os.path.basename(d) + "/", d, kind="dataset", expected=NIH_ROWS.get(os.path.basename(d)),
                  writer="ingest")

    if split_ok:
        P.add(
            P.rel(split_out),
            split_out,
            expected=count("SELECT COUNT(DISTINCT patient_id) FROM images"),
            why="DuckDB: patients in images",
            writer="split --out",
        )

    ex = os.path.join(a.scratch, "export")
    os.makedirs(ex, exist_ok=True)
    pa_first = count("SELECT COUNT(DISTINCT patient_id) FROM images WHERE view_position = 'PA'")
    effusion_sql = (
        "SELECT COUNT(*) FROM images WHERE list_contains(labels, 'Effusion') "
        "AND NOT list_contains(labels, 'Pneumothorax') AND sex = 'F' AND age BETWEEN 40 AND 60 "
        "AND view_position = 'PA'"
    )
    effusion = count(effusion_sql)
    all_images = count("SELECT COUNT(*) FROM images")

    # 4. Exports: a training manifest, with paths, with pixels, partitioned, plain tables.
    exports = [
        ("manifest_pa_first.parquet", ["--view", "PA", "--first-study"], pa_first,
         "DuckDB: patients with a PA image (one first study each)"),
        ("effusion_paths.parquet",
         ["--with", "Effusion", "--without", "Pneumothorax", "--sex", "F", "--age", "40..60", "--view", "PA",
          "--image-root", "/data/images-224"], effusion, "DuckDB: the same cohort over images.parquet"),
        ("with_pixels.parquet", ["--with-pixels"], all_images, "DuckDB: all images"),
        ("snappy_rowgroups/", ["--any", "Mass", "--any", "Nodule", "--compression", "snappy",
                               "--row-group-size", "1000", "--sort-by", "age"],
         count("SELECT COUNT(*) FROM images WHERE list_contains(labels, 'Mass') OR list_contains(labels, 'Nodule')"),
         "DuckDB: images with Mass or Nodule"),
    ]
    if split_ok:
        exports.append(
            ("split_val.parquet", ["--split", "val"],
             count("SELECT COUNT(*) FROM images WHERE patient_id IN (SELECT patient_id FROM splits WHERE split = 'val')"),
             "DuckDB: images of the splits table's val patients")
        )
    for out, flags, exp, why in exports:
        path = os.path.join(ex, out)
        if P.run(f"export {out}", ["export", "-w", wh] + flags + ["--out", path], [path]):
            if out.endswith("/"):
                # `--out DIR` without .parquet: DIR/part-0.parquet
                path = os.path.join(path, "part-0.parquet")
            P.add(P.rel(path), path, expected=exp, why=why, targets=True, writer="export " + " ".join(flags))

    # Hive-partitioned: split=<value>/part-0.parquet, read as a dataset.
    part = os.path.join(ex, "by_split")
    if P.run("export --partition-by split", ["export", "-w", wh, "--partition-by", "split", "--out", part], [part]):
        # After `cxr split`, an export's `split` is the splits table's (docs/SCHEMA.md);
        # before, the official images.split.
        if split_ok:
            rows = q("SELECT COALESCE(sp.split, '__HIVE_DEFAULT_PARTITION__'), COUNT(*) FROM images i "
                     "LEFT JOIN splits sp ON sp.patient_id = i.patient_id GROUP BY 1")
        else:
            rows = q("SELECT COALESCE(split, '__HIVE_DEFAULT_PARTITION__'), COUNT(*) FROM images GROUP BY 1")
        counts = {k: v for k, v in rows} if rows is not None else None
        P.add(P.rel(part) + "/", part, kind="dataset", expected=all_images, why="DuckDB: all images",
              targets=True, partition={"column": "split", "counts": counts}, writer="export --partition-by split")
    if split_ok:
        part2 = os.path.join(ex, "by_split_random")
        # The random split is a table of its own; partition a cohort of it by sex.
        if P.run("export --split train --partition-by sex",
                 ["export", "-w", wh, "--split", "train", "--partition-by", "sex", "--out", part2], [part2]):
            rows = q("SELECT sex, COUNT(*) FROM images WHERE patient_id IN "
                     "(SELECT patient_id FROM splits WHERE split = 'train') GROUP BY 1")
            counts = {k: v for k, v in rows} if rows is not None else None
            P.add(P.rel(part2) + "/", part2, kind="dataset", expected=sum(counts.values()) if counts else None,
                  why="DuckDB: images of the splits table's train patients", targets=True,
                  partition={"column": "sex", "counts": counts}, writer="export --split train --partition-by sex")

    tables = os.path.join(ex, "tables")
    if P.run("export --tables", ["export", "-w", wh, "--tables", tables], [tables]):
        for f in sorted(glob.glob(os.path.join(tables, "*.parquet"))):
            name = os.path.basename(f)[: -len(".parquet")]
            exp = NIH_ROWS.get(name)
            P.add(P.rel(f), f, expected=exp, why="NIH release" if exp is not None else None, writer="export --tables")
        for d in sorted(glob.glob(os.path.join(tables, "*"))):
            if os.path.isdir(d):
                P.add(P.rel(d) + "/", d, kind="dataset", expected=NIH_ROWS.get(os.path.basename(d)),
                      writer="export --tables")

    # 5. `cxr sql --out`: the same SQL in DuckDB gives the expected rows.
    qd = os.path.join(a.scratch, "sql")
    os.makedirs(qd, exist_ok=True)
    for name, sql in SQL_QUERIES.items():
        path = os.path.join(qd, name + ".parquet")
        if P.run(f"sql --out {name}", ["sql", "-w", wh, "--out", path, sql], [path]):
            P.add(P.rel(path), path, expected=count(f"SELECT COUNT(*) FROM ({sql})"),
                  why="DuckDB: the same query over the warehouse files", writer="sql --out")
    for name, view in VIEW_QUERIES.items():
        path = os.path.join(qd, name + ".parquet")
        if P.run(f"sql --out {name}", ["sql", "-w", wh, "--out", path, f"SELECT * FROM {view}"], [path]):
            exp, why = None, None
            vfile = os.path.join(a.repo, "src", "sql", "views", view + ".sql")
            if view == "followups":
                exp, why = all_images, "DuckDB: one row per image"
            elif os.path.exists(vfile):
                text = open(vfile).read().replace("{images}", "images").replace("{findings}", "findings")
                text = "\n".join(l for l in text.splitlines() if not l.strip().startswith("--"))
                exp = count(f"SELECT COUNT(*) FROM ({text})")
                why = f"DuckDB: src/sql/views/{view}.sql over the warehouse files"
            P.add(P.rel(path), path, expected=exp, why=why, writer="sql --out")

    # 6. The other commands with --out FILE.parquet.
    cd = os.path.join(a.scratch, "cmd")
    os.makedirs(cd, exist_ok=True)
    others = [
        ("cohort.parquet",
         ["cohort", "--with", "Effusion", "--without", "Pneumothorax", "--sex", "F", "--age", "40..60", "--view", "PA"],
         effusion, "DuckDB: the same cohort over images.parquet"),
        ("cohort_first_study.parquet", ["cohort", "--view", "PA", "--first-study"], pa_first,
         "DuckDB: patients with a PA image"),
        ("cooccur.parquet", ["cooccur", "--metric", "lift"], None, None),
        ("followup_patient.parquet", ["followup", "--patient", "18404"],
         count("SELECT COUNT(*) FROM images WHERE patient_id = 18404"), "DuckDB: images of patient 18404"),
        ("followup_transitions.parquet", ["followup", "--transitions"], None, None),
        ("run_top_pairs.parquet", ["run", "top_pairs", "-p", "top=3"], 3, "top=3"),
        ("run_first_study.parquet", ["run", "first_study"], pa_first, "DuckDB: patients with a PA image"),
    ]
    for out, args, exp, why in others:
        if not P.has_command(args[0]):
            continue
        path = os.path.join(cd, out)
        if P.run(f"{args[0]} --out", [args[0], "-w", wh] + args[1:] + ["--out", path], [path]):
            P.add(P.rel(path), path, expected=exp, why=why, writer=" ".join(args[:1]) + " --out")

    # Anything else cxr left as Parquet under the scratch dir is read too.
    covered = set()
    for u in P.units:
        if u["kind"] == "dataset":
            covered.update(glob.glob(os.path.join(u["path"], "**", "*.parquet"), recursive=True))
        else:
            covered.add(u["path"])
    # (Older versions' directories in the warehouse are the same tables: left out.)
    for f in sorted(glob.glob(os.path.join(a.scratch, "**", "*.parquet"), recursive=True)):
        if f.startswith(wh + os.sep) and not f.startswith(data + os.sep):
            continue
        if f not in covered:
            P.add(P.rel(f), f, writer="(found)")

    expectations = {
        "manifest_tables": manifest.get("tables"),
        "nih_rows": NIH_ROWS,
    }
    write_plan(a.scratch, P, expectations)
    log(f"produced {len(P.units)} files/datasets in {time.time() - t0:.1f} s; cxr log: {P.cxr_log.name}")


def write_plan(scratch, P, expectations):
    # The order of the 14 findings each file declares (read once, by the new pyarrow:
    # the key-value metadata does not depend on the embedded Arrow schema).
    import pyarrow.parquet as pq

    for u in P.units:
        files = [u["path"]] if u["kind"] == "file" else sorted(
            glob.glob(os.path.join(u["path"], "**", "*.parquet"), recursive=True))
        u["files"] = files
        u["kv"] = {}
        if files:
            try:
                kv = pq.read_metadata(files[0]).metadata or {}
                u["kv"] = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in kv.items()
                           if k != b"ARROW:schema"}
            except Exception as e:  # noqa: BLE001
                u["kv_error"] = f"{type(e).__name__}: {e}"
        targets = u["kv"].get("cxr.targets")
        try:
            u["targets_order"] = json.loads(targets) if targets else None
        except ValueError:
            u["targets_order"] = None
    with open(os.path.join(scratch, "plan.json"), "w") as f:
        json.dump({"units": P.units, "cxr_failures": P.failures, "expectations": expectations}, f, indent=1)


if __name__ == "__main__":
    main()
