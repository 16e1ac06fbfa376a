"""cxr benchmarks. Run through bench/run.sh (release build, DuckDB install).

Every figure times whole processes: the cxr binary against the real DuckDB CLI
executable (the binary inside the `duckdb_cli` pip package, never a launcher script
on PATH) over the same Parquet files cxr's warehouse holds (`W/<data>/NAME.parquet`,
`data` from manifest.json), or against the read-then-decode reference loop
(examples/read_decode.rs) on the same tar. Peers run interleaved in the same run
(cxr, peer, peer, cxr, ...), after one warm-up each; the figure is the median of
N runs (9 unless --runs). Answers are compared: the rows DuckDB returns must equal
the rows cxr returns (sets of image_index for cohort rows).

Sections (default: all but full and interop):
  sql     the global and cohort questions
  ingest  `cxr ingest --no-images` of the shipped metadata vs DuckDB CSV -> Parquet
  formats `cxr ingest --images` on a tar of 2,000 JPEGs, 16-bit PNGs and DICOMs each
          (bench/formats.py writes them with Pillow and pydicom) vs the same reference
  pixels  `cxr ingest --images` on a 20,000-image synthetic tar vs the reference
  full    `cxr ingest --images` on a 112,120-image synthetic tar: time, peak RSS
  datasets  ingest of NIH + CheXpert + PadChest vs DuckDB reading the three CSVs
  across  cohort, co-occurrence, prevalence and timeline questions across datasets
          (every real dataset file in ../shared/datasets) vs DuckDB over the plain tables
  interop bench/interop/run.sh

Environment: CXR_BIN, CXR_REF (default target/release/{cxr,examples/read_decode},
under $CARGO_TARGET_DIR when set), DUCKDB_BIN (default: found in duckdb_cli).
"""

import csv
import io
import json
import os
import statistics
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
PROFILE = os.environ.get("CXR_PROFILE", "release")
CXR = os.environ.get("CXR_BIN") or os.path.join(TARGET, PROFILE, "cxr")
REF = os.environ.get("CXR_REF") or os.path.join(TARGET, PROFILE, "examples", "read_decode")
DATA = os.path.join(ROOT, "data")
OUT = os.environ.get("CXR_BENCH_OUT") or os.path.join(ROOT, "bench", "out")
RUNS = 9
FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema",
            "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening",
            "Pneumonia", "Pneumothorax"]
FINDING_LIST = "[" + ", ".join(f"'{f}'" for f in FINDINGS) + "]"
RESULTS = []  # (question, cxr s, peer s, ratio, target, ok, what)


# The NIH files the warehouses are ingested from: this checkout's, whichever checkout
# built the binary.
os.environ.setdefault("CXR_DATA", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))


def duckdb_binary():
    """The real DuckDB executable: DUCKDB_BIN, else the binary in the duckdb_cli package."""
    if os.environ.get("DUCKDB_BIN"):
        return os.environ["DUCKDB_BIN"]
    try:
        pkg = subprocess.run(
            [sys.executable, "-c", "import duckdb_cli, os; print(os.path.dirname(duckdb_cli.__file__))"],
            capture_output=True, text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError:
        return None
    for name in ("duckdb", "duckdb.exe"):
        p = os.path.join(pkg, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF" or name.endswith(".exe"):
                    return p
    return None


DUCKDB = duckdb_binary()


def run(cmd, ok_codes=(0,)):
    """Runs a command, returns (seconds, stdout)."""
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if p.returncode not in ok_codes:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    return dt, p.stdout


def interleaved(cmds, runs=None, before=None):
    """Median seconds of each command, run interleaved (order alternating per round)
    after one warm-up each. `before(i)` runs (untimed) before each timed run of cmds[i]."""
    runs = runs or RUNS
    for i, c in enumerate(cmds):
        if before:
            before(i)
        run(c)
    times = [[] for _ in cmds]
    for r in range(runs):
        order = list(range(len(cmds)))
        if r % 2:
            order.reverse()
        for i in order:
            if before:
                before(i)
            times[i].append(run(cmds[i])[0])
    return [statistics.median(t) for t in times]


def peak_rss(cmd):
    """Runs cmd under GNU time -v: (seconds, peak RSS in MiB, stdout)."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    kb = next(int(l.split(":")[1]) for l in p.stderr.splitlines() if "Maximum resident set size" in l)
    return dt, kb / 1024.0, p.stdout


def rows(text):
    """CSV text -> list of rows (header dropped), floats rounded to 9 significant digits."""
    out = []
    for r in list(csv.reader(io.StringIO(text)))[1:]:
        row = []
        for v in r:
            try:
                f = float(v)
                row.append(f"{f:.9g}" if ("." in v or "e" in v.lower()) else v)
            except ValueError:
                row.append(v)
        out.append(tuple(row))
    return out


def record(question, cxr_s, peer_s, target, what, same, higher_is_better=False):
    ratio = cxr_s / peer_s
    if higher_is_better:  # rates: cxr/peer >= target
        ok = ratio >= target
        tgt = f">= {target:.1f}"
    else:
        ok = ratio <= target
        tgt = f"<= {target:.1f}"
    if not same:
        ok = False
    RESULTS.append((question, cxr_s, peer_s, ratio, tgt, ok, what, same))
    print(f"  {question}: cxr {fmt(cxr_s, higher_is_better)}, peer {fmt(peer_s, higher_is_better)}, "
          f"ratio {ratio:.2f} (target {tgt}){'' if same else '  ANSWERS DIFFER'}", flush=True)


def fmt(x, rate=False):
    return f"{x:,.0f} img/s" if rate else f"{x * 1000:.0f} ms"


def warehouse(name, *extra):
    """Ingests the shipped metadata into OUT/name; returns (dir, data dir)."""
    wh = os.path.join(OUT, name)
    # Fresh each run: an existing warehouse would be re-ingested from the inputs it
    # recorded, which may be another checkout's.
    shutil.rmtree(wh, ignore_errors=True)
    run([CXR, "ingest", "--no-images", "--warehouse", wh, *extra])
    with open(os.path.join(wh, "manifest.json")) as f:
        data = json.load(f)["data"]
    return wh, os.path.join(wh, data)


# ---------------------------------------------------------------- sql questions
# Each: (question, target, cxr argv, DuckDB SQL over {images}/{findings}, compare).
# compare: "rows" (all columns), "first" (the set of the first column), or a list of
# column indexes. DuckDB computes from the plain tables; cxr uses what it has
# (materialised tables for global questions, the cohort SQL otherwise).

TOP_PAIRS_DUCK = """
SELECT a.label AS label_a, b.label AS label_b, COUNT(*) AS n_ab
FROM {findings} a JOIN {findings} b ON a.image_index = b.image_index AND a.label < b.label
GROUP BY a.label, b.label ORDER BY n_ab DESC, label_a, label_b LIMIT 10"""
TOP_PAIRS_CXR = ("SELECT label_a, label_b, n_ab FROM cooccurrence WHERE label_a < label_b "
                 "ORDER BY n_ab DESC, label_a, label_b LIMIT 10")

TRANSITIONS_DUCK = """
WITH o AS (
  SELECT labels, LAG(labels) OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) AS prev
  FROM {images}),
t AS (SELECT labels, prev FROM o WHERE prev IS NOT NULL),
ap AS (SELECT unnest(list_filter(labels, lambda x: NOT list_contains(prev, x))) AS label FROM t),
re AS (SELECT unnest(list_filter(prev, lambda x: NOT list_contains(labels, x))) AS label FROM t),
f AS (SELECT unnest(%s) AS label)
SELECT f.label, COALESCE(a.n, 0) AS appeared, COALESCE(r.n, 0) AS resolved
FROM f LEFT JOIN (SELECT label, COUNT(*) AS n FROM ap GROUP BY label) a ON a.label = f.label
       LEFT JOIN (SELECT label, COUNT(*) AS n FROM re GROUP BY label) r ON r.label = f.label
ORDER BY appeared DESC, f.label""" % FINDING_LIST

SUMMARY_DUCK = """
WITH fu AS (
  SELECT patient_id, labels,
         ROW_NUMBER() OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) AS study_rank
  FROM {images}),
finding AS (SELECT unnest(%s) AS label),
multi AS (SELECT patient_id FROM fu GROUP BY patient_id HAVING COUNT(*) >= 2),
s AS (
  SELECT fu.patient_id, fu.study_rank, fu.labels,
         LEAD(fu.labels) OVER (PARTITION BY fu.patient_id ORDER BY fu.study_rank) AS next_labels
  FROM fu JOIN multi m ON m.patient_id = fu.patient_id),
per AS (
  SELECT f.label, s.patient_id, s.study_rank,
         list_contains(s.labels, f.label) AS pos,
         s.next_labels IS NOT NULL AS has_next,
         COALESCE(list_contains(s.next_labels, f.label), false) AS next_pos
  FROM s CROSS JOIN finding f),
by_patient AS (
  SELECT label, patient_id,
         MAX(CASE WHEN pos THEN 1 ELSE 0 END) AS ever,
         MAX(CASE WHEN pos AND study_rank = 1 THEN 1 ELSE 0 END) AS at_first,
         MIN(CASE WHEN pos THEN study_rank END) AS first_rank
  FROM per GROUP BY label, patient_id),
persist AS (
  SELECT label,
         SUM(CASE WHEN pos AND has_next AND next_pos THEN 1 ELSE 0 END) AS kept,
         SUM(CASE WHEN pos AND has_next THEN 1 ELSE 0 END) AS followed
  FROM per GROUP BY label)
SELECT b.label, COUNT(*) AS patients, SUM(b.ever) AS ever_positive,
       SUM(b.at_first) AS positive_at_first,
       SUM(CASE WHEN b.ever = 1 AND b.at_first = 0 THEN 1 ELSE 0 END) AS incident,
       median(CASE WHEN b.ever = 1 AND b.at_first = 0 THEN b.first_rank - 1 END) AS median_studies_before_first,
       round(CAST(MAX(p.kept) AS DOUBLE) / NULLIF(MAX(p.followed), 0), 4) AS persistence
FROM by_patient b JOIN persist p ON p.label = b.label
GROUP BY b.label ORDER BY ever_positive DESC, b.label""" % FINDING_LIST

FIRST_STUDY_DUCK = """
SELECT * FROM {images}
QUALIFY ROW_NUMBER() OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) = 1"""

COHORT_DUCK = """
SELECT * FROM {images}
WHERE list_contains(labels, 'Effusion') AND NOT list_contains(labels, 'Pneumothorax')
  AND sex = 'F' AND age BETWEEN 40 AND 60 AND view_position = 'PA'"""

COOCCUR_DUCK = """
WITH c AS (SELECT image_index FROM {images} WHERE sex = 'F' AND view_position = 'PA'),
cf AS (SELECT f.image_index, f.label FROM {findings} f JOIN c ON c.image_index = f.image_index),
fl AS (SELECT unnest(%s) AS label),
pl AS (SELECT fl.label, COUNT(cf.image_index) AS n FROM fl LEFT JOIN cf ON cf.label = fl.label GROUP BY fl.label),
pr AS (SELECT a.label AS la, b.label AS lb, COUNT(*) AS n_ab
       FROM cf a JOIN cf b ON a.image_index = b.image_index AND a.label <> b.label GROUP BY ALL)
SELECT a.label AS label_a, b.label AS label_b, a.n AS n_a, b.n AS n_b,
       COALESCE(pr.n_ab, 0) AS n_ab
FROM pl a CROSS JOIN pl b LEFT JOIN pr ON pr.la = a.label AND pr.lb = b.label
WHERE a.label <> b.label ORDER BY label_a, label_b""" % FINDING_LIST

QUESTIONS = [
    ("top co-occurring pairs", 0.5,
     lambda wh: ["sql", "-w", wh, "--format", "csv", TOP_PAIRS_CXR], TOP_PAIRS_DUCK, "rows"),
    ("consecutive-study transitions", 0.5,
     lambda wh: ["followup", "--transitions", "-w", wh, "--format", "csv"], TRANSITIONS_DUCK, "rows"),
    ("per-finding follow-up summary", 0.5,
     lambda wh: ["followup", "-w", wh, "--format", "csv"], SUMMARY_DUCK, "rows"),
    ("first-study cohort (all patients)", 0.5,
     lambda wh: ["cohort", "--first-study", "-w", wh, "--format", "csv"], FIRST_STUDY_DUCK, "first"),
    ("cohort rows (F, 40-60, PA, Effusion, no Pneumothorax)", 1.0,
     lambda wh: ["cohort", "--with", "Effusion", "--without", "Pneumothorax", "--sex", "F",
                 "--age", "40..60", "--view", "PA", "-w", wh, "--format", "csv"], COHORT_DUCK, "first"),
    ("co-occurrence within a cohort (PA women)", 1.0,
     lambda wh: ["cooccur", "--sex", "F", "--view", "PA", "-w", wh, "--format", "csv"], COOCCUR_DUCK, "rows"),
]


def same_answers(cxr_out, duck_out, compare):
    a, b = rows(cxr_out), rows(duck_out)
    if compare == "first":
        return len(a) == len(b) and sorted(r[0] for r in a) == sorted(r[0] for r in b)
    return a == b


def bench_sql():
    print(f"sql questions (whole process, median of {RUNS}, interleaved with the DuckDB CLI)", flush=True)
    wh, data = warehouse("wh-sql")
    tables = {t: f"read_parquet('{os.path.join(data, t + '.parquet')}')" for t in ("images", "findings")}
    for question, target, argv, duck_sql, compare in QUESTIONS:
        cxr_cmd = [CXR] + argv(wh)
        duck_cmd = [DUCKDB, "-csv", "-c", duck_sql.format(**tables)]
        same = same_answers(run(cxr_cmd)[1], run(duck_cmd)[1], compare)
        if not same:
            print(f"    cxr:    {run(cxr_cmd)[1][:600]}\n    duckdb: {run(duck_cmd)[1][:600]}")
        cxr_s, duck_s = interleaved([cxr_cmd, duck_cmd])
        what = "cxr " + " ".join(a for a in argv("W") if a not in ("-w", "W", "--format", "csv"))[:70]
        record(question, cxr_s, duck_s, target, what, same)


def bench_ingest():
    print(f"metadata ingest (whole process, median of {RUNS}, interleaved)", flush=True)
    wh = os.path.join(OUT, "wh-ingest")
    csv_gz = os.path.join(DATA, "Data_Entry_2017_v2020.csv.gz")
    pq = os.path.join(OUT, "duck.parquet")
    sql = f"COPY (SELECT * FROM read_csv('{csv_gz}')) TO '{pq}' (FORMAT parquet, COMPRESSION zstd)"
    cxr_cmd = [CXR, "ingest", "--no-images", "--warehouse", wh]
    duck_cmd = [DUCKDB, "-c", sql]
    cxr_s, duck_s = interleaved([cxr_cmd, duck_cmd])
    n_duck = run([DUCKDB, "-csv", "-c", f"SELECT COUNT(*) FROM read_parquet('{pq}')"])[1].split()[1]
    with open(os.path.join(wh, "manifest.json")) as f:
        n_cxr = json.load(f)["tables"]["images"]
    record("metadata ingest (cxr: all tables; DuckDB: CSV -> one Parquet)", cxr_s, duck_s, 1.0,
           "cxr ingest --no-images vs duckdb COPY read_csv -> parquet", str(n_cxr) == n_duck)


SHARED = os.environ.get("CXR_SHARED_DATASETS",
                        os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"))


def bench_datasets():
    """NIH with CheXpert and PadChest (issue 14): cxr's whole ingest vs DuckDB reading
    the same three CSVs into Parquet in one process."""
    chexpert = os.path.join(SHARED, "chexpert_train.csv.gz")
    padchest = os.path.join(SHARED, "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz")
    if not (os.path.exists(chexpert) and os.path.exists(padchest)):
        print(f"datasets: skipped (no CheXpert/PadChest files under {SHARED})")
        return
    print(f"NIH + CheXpert + PadChest ingest (whole process, median of {RUNS}, interleaved)", flush=True)
    wh = os.path.join(OUT, "wh-datasets")
    nih = os.path.join(DATA, "Data_Entry_2017_v2020.csv.gz")
    outs = [os.path.join(OUT, f"duck-{n}.parquet") for n in ("nih", "chexpert", "padchest")]
    sql = "; ".join(
        f"COPY (SELECT * FROM read_csv('{src}', all_varchar = true)) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)"
        for src, dst in zip((nih, chexpert, padchest), outs))
    cxr_cmd = [CXR, "ingest", "--no-images", "--no-other-release", "--warehouse", wh,
               "--dataset", f"chexpert={chexpert}", "--dataset", f"padchest={padchest}"]
    duck_cmd = [DUCKDB, "-c", sql]
    cxr_s, duck_s = interleaved([cxr_cmd, duck_cmd])
    n_duck = [int(run([DUCKDB, "-csv", "-c", f"SELECT COUNT(*) FROM read_parquet('{o}')"])[1].split()[1])
              for o in outs]
    n_cxr = run([CXR, "sql", "-w", wh, "-f", "csv",
                 "SELECT n_images FROM datasets WHERE dataset IN ('nih', 'chexpert', 'padchest') "
                 "ORDER BY CASE dataset WHEN 'nih' THEN 0 WHEN 'chexpert' THEN 1 ELSE 2 END"])[1].split()[1:]
    print(f"  rows: cxr {n_cxr}, DuckDB {n_duck}")
    record("ingest NIH + CheXpert + PadChest (cxr: all tables; DuckDB: 3 CSVs -> Parquet)",
           cxr_s, duck_s, 1.0, "cxr ingest --dataset chexpert= --dataset padchest= vs duckdb COPY x3",
           [int(x) for x in n_cxr] == n_duck)


# ------------------------------------------------- questions across datasets
# cxr over its warehouse of NIH + every dataset whose real files are in SHARED; DuckDB
# over the plain tables of the same warehouse (`cxr export --tables`), `dataset_images` and
# `dataset_labels`, with the SQL a DuckDB user would write. Each: (question, cxr argv,
# DuckDB SQL, cxr columns compared, DuckDB columns compared), rows compared as sorted sets.

ACROSS_COHORT_DUCK = """
WITH lab AS (
  SELECT image_id, finding, MAX(CASE "value" WHEN 1 THEN 2 WHEN -1 THEN 1 ELSE 0 END) AS state
  FROM dataset_labels WHERE dataset = 'chexpert' AND finding IN ('Effusion', 'Pneumothorax') GROUP BY ALL)
SELECT x.image_id FROM dataset_images x
WHERE x.dataset = 'chexpert' AND x.sex = 'F' AND x.age BETWEEN 40 AND 60 AND x."view" = 'PA'
  AND x.image_id IN (SELECT image_id FROM lab WHERE finding = 'Effusion' AND state = 2)
  AND x.image_id NOT IN (SELECT image_id FROM lab WHERE finding = 'Pneumothorax' AND state >= 1)"""

def across_cooccur_duck(cohort=""):
    """Co-occurrence counts per dataset of CheXpert and PadChest from the plain tables:
    of the images `cohort` (a condition on dataset_images) keeps, or of all (then the
    labels alone are read, as a DuckDB user would write it)."""
    labels = "dataset_labels l WHERE l.dataset IN ('chexpert', 'padchest')"
    if cohort:
        labels = f"""dataset_labels l JOIN (SELECT dataset, image_id FROM dataset_images
           WHERE dataset IN ('chexpert', 'padchest'){cohort}) c
        ON c.dataset = l.dataset AND c.image_id = l.image_id WHERE true"""
    return f"""
WITH pos AS (
  SELECT DISTINCT l.dataset, l.image_id, l.finding FROM {labels}
  AND l.finding IS NOT NULL AND l."value" = 1),
lab AS (SELECT DISTINCT l.dataset, l.finding FROM {labels} AND l.finding IS NOT NULL),
n AS (SELECT dataset, finding, COUNT(*) AS n FROM pos GROUP BY ALL),
ab AS (SELECT a.dataset, a.finding AS fa, b.finding AS fb, COUNT(*) AS n_ab
       FROM pos a JOIN pos b ON a.dataset = b.dataset AND a.image_id = b.image_id AND a.finding <> b.finding GROUP BY ALL)
SELECT la.dataset, la.finding, lb.finding, COALESCE(na.n, 0), COALESCE(nb.n, 0), COALESCE(ab.n_ab, 0)
FROM lab la JOIN lab lb ON la.dataset = lb.dataset AND la.finding <> lb.finding
LEFT JOIN n na ON na.dataset = la.dataset AND na.finding = la.finding
LEFT JOIN n nb ON nb.dataset = lb.dataset AND nb.finding = lb.finding
LEFT JOIN ab ON ab.dataset = la.dataset AND ab.fa = la.finding AND ab.fb = lb.finding"""

ACROSS_PREVALENCE_DUCK = """
WITH l AS (
  SELECT dataset, image_id, source, finding, "value" FROM dataset_labels
  WHERE dataset IN ('nih', 'chexpert', 'padchest') AND (dataset <> 'nih' OR source = 'nih_2020')),
source_findings AS (SELECT DISTINCT dataset, source, finding FROM l WHERE finding IS NOT NULL),
image_sources AS (SELECT DISTINCT dataset, image_id, source FROM l),
known AS (SELECT DISTINCT i.dataset, i.image_id, s.finding
          FROM image_sources i JOIN source_findings s ON s.dataset = i.dataset AND s.source = i.source),
state AS (SELECT dataset, image_id, finding, MAX(CASE "value" WHEN 1 THEN 2 WHEN -1 THEN 1 ELSE 0 END) AS s
          FROM l WHERE finding IS NOT NULL GROUP BY ALL)
SELECT k.dataset, k.finding, COUNT(*) FILTER (WHERE COALESCE(st.s, 0) <> 1) AS known,
       COUNT(*) FILTER (WHERE st.s = 2) AS positive
FROM known k LEFT JOIN state st ON st.dataset = k.dataset AND st.image_id = k.image_id AND st.finding = k.finding
GROUP BY ALL"""

ACROSS_TIMELINE_DUCK = """
WITH img AS (
  SELECT dataset, image_id, study_id, study_order FROM dataset_images
  WHERE dataset = 'chexpert' AND patient_id = 'patient00011' AND study_order IS NOT NULL),
pos AS (
  SELECT i.study_id, l.finding FROM img i
  JOIN dataset_labels l ON l.dataset = i.dataset AND l.image_id = i.image_id
  WHERE l."value" = 1 AND l.finding IS NOT NULL),
studies AS (SELECT study_id, MIN(study_order) AS o FROM img GROUP BY study_id),
labelled AS (
  SELECT s.study_id, s.o, list_sort(list_distinct(list(p.finding) FILTER (WHERE p.finding IS NOT NULL))) AS labels
  FROM studies s LEFT JOIN pos p ON p.study_id = s.study_id GROUP BY s.study_id, s.o)
SELECT study_id, labels, LAG(labels) OVER (ORDER BY o, study_id) AS previous FROM labelled ORDER BY o, study_id"""

ACROSS = [
    ("across: cohort rows (CheXpert, F, 40-60, PA, Effusion, no Pneumothorax)",
     ["cohort", "--dataset", "chexpert", "--with", "Effusion", "--without", "Pneumothorax",
      "--sex", "F", "--age", "40..60", "--view", "PA"], ACROSS_COHORT_DUCK, [1], [0]),
    ("across: co-occurrence counts (CheXpert + PadChest)",
     ["cooccur", "--dataset", "chexpert,padchest"], across_cooccur_duck(), [0, 1, 2, 3, 4, 5],
     [0, 1, 2, 3, 4, 5]),
    ("across: co-occurrence within a cohort (CheXpert + PadChest, PA women)",
     ["cooccur", "--dataset", "chexpert,padchest", "--sex", "F", "--view", "PA"],
     across_cooccur_duck(" AND sex = 'F' AND \"view\" = 'PA'"), [0, 1, 2, 3, 4, 5],
     [0, 1, 2, 3, 4, 5]),
    ("across: prevalence per finding with its denominator (NIH + CheXpert + PadChest)",
     ["run", "prevalence_by_dataset"], ACROSS_PREVALENCE_DUCK, "prevalence", [0, 1, 2, 3]),
    ("across: one patient's timeline (CheXpert patient00011)",
     ["followup", "--dataset", "chexpert", "--patient", "patient00011"], ACROSS_TIMELINE_DUCK,
     [2], [0]),
]


def across_rows(out, cols):
    """The compared part of a result: `cols` of every row, or for `prevalence_by_dataset`
    (dataset, finding, known, positive) of NIH, CheXpert and PadChest."""
    if cols == "prevalence":  # (dataset, finding, known, positive) of three datasets
        return sorted((r[0], r[1], r[3], r[4]) for r in rows(out) if r[0] in ("nih", "chexpert", "padchest"))
    return sorted(tuple(r[c] for c in cols) for r in rows(out))


def bench_across():
    files = {n: os.path.join(SHARED, n) for n in (
        "chexpert_train.csv.gz", "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz",
        "vinbigdata-train.csv.gz", "kaggle_stage_2_train_labels.csv.zip",
        "kaggle_stage_2_train_images_dicom_headers.csv.gz", "siim-pneumothorax-train-rle.csv.gz",
        "nlmcxr_dicom_metadata.csv.gz", "NLMCXR_reports.tgz")}
    missing = [n for n, p in files.items() if not os.path.exists(p)]
    if missing:
        print(f"across: skipped (missing under {SHARED}: {', '.join(missing)})")
        return
    f = lambda n: files[n]
    specs = [f"chexpert={f('chexpert_train.csv.gz')}",
             f"padchest={f('PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz')}",
             f"vindr={f('vinbigdata-train.csv.gz')}",
             f"rsna={f('kaggle_stage_2_train_labels.csv.zip')},{f('kaggle_stage_2_train_images_dicom_headers.csv.gz')}",
             f"siim={f('siim-pneumothorax-train-rle.csv.gz')}",
             f"openi={f('nlmcxr_dicom_metadata.csv.gz')},{f('NLMCXR_reports.tgz')}"]
    wh = os.path.join(OUT, "wh-across")
    ingest = [CXR, "ingest", "--no-images", "--warehouse", wh]
    for spec in specs:
        ingest += ["--dataset", spec]
    secs, rss, _ = peak_rss(ingest)
    print(f"across: ingest of NIH + {len(specs)} datasets: {secs:.2f} s, peak RSS {rss:.0f} MiB (target < 500)")
    tables = os.path.join(OUT, "wh-across-tables")
    run([CXR, "export", "--tables", tables, "-w", wh, "--overwrite"])
    views = "; ".join(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{os.path.join(tables, t + '.parquet')}')"
                      for t in ("dataset_images", "dataset_labels"))
    print(f"across questions (whole process, median of {RUNS}, interleaved with the DuckDB CLI "
          f"over the exported dataset_images and dataset_labels)", flush=True)
    for question, argv, duck_sql, cxr_cols, duck_cols in ACROSS:
        cxr_cmd = [CXR] + argv + ["-w", wh, "--format", "csv"]
        duck_cmd = [DUCKDB, "-csv", "-c", f"{views}; {duck_sql}"]
        a, b = across_rows(run(cxr_cmd)[1], cxr_cols), across_rows(run(duck_cmd)[1], duck_cols)
        same = a == b and len(a) > 0
        if not same:
            print(f"    cxr ({len(a)} rows):    {a[:5]}\n    duckdb ({len(b)} rows): {b[:5]}")
        cxr_s, duck_s = interleaved([cxr_cmd, duck_cmd])
        _, rss, _ = peak_rss(cxr_cmd)
        record(question, cxr_s, duck_s, 1.0, f"cxr {' '.join(argv)} (peak RSS {rss:.0f} MiB, target < 300)"[:160], same)


def synth_tar(count):
    tar = os.path.join(OUT, f"synth-{count}.tar")
    if not os.path.exists(tar):
        run([CXR, "synth", "images", "--count", str(count), "--out", tar])
    return tar


def bench_pixels(count=20000):
    print(f"pixels: synthetic tar of {count:,} 224x224 PNGs (whole process, median of {RUNS}, interleaved)", flush=True)
    pixels_against_reference(f"{count:,} PNGs", synth_tar(count), count)


def bench_formats(count=2000):
    print(f"formats: tars of {count:,} 512x512 images per format (whole process, median of {RUNS}, interleaved)",
          flush=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "formats.py"), OUT, str(count)], check=True)
    for name, label in [("jpeg", "8-bit JPEGs"), ("png16", "16-bit PNGs"), ("dicom", "12-bit DICOMs")]:
        print(f"  {label}")
        pixels_against_reference(f"{count:,} {label}", os.path.join(OUT, f"{name}-{count}.tar"), count)


def pixels_against_reference(what, tar, count):
    """`cxr ingest --images TAR` against the read-whole-tar-then-decode loop."""
    size_mb = os.path.getsize(tar) / 1e6
    print(f"  tar: {size_mb:.0f} MB ({size_mb * 1e3 / count:.1f} KB per image)")
    wh = os.path.join(OUT, "wh-pixels")
    cxr_cmd = [CXR, "ingest", "--no-bbox", "--no-expert", "--images", tar, "--warehouse", wh]
    ref_cmd = [REF, tar]

    def fresh(i):  # every cxr run measures every image: no resume cache, no old warehouse
        if i == 0:
            shutil.rmtree(wh, ignore_errors=True)
    cxr_s, ref_s = interleaved([cxr_cmd, ref_cmd], before=fresh)
    ref = json.loads(run(ref_cmd)[1])
    with open(os.path.join(wh, "manifest.json")) as f:
        measured = json.load(f)["tables"]["pixel_stats"]
    print(f"  reference phases: read {ref['read_s']:.3f} s, decode+stats {ref['decode_s']:.3f} s")
    record(f"ingest --images, {what} (img/s)", count / cxr_s, count / ref_s, 1.0,
           "cxr ingest --images (CSVs too) vs read-whole-tar-then-decode+stats",
           measured == count == ref["images"], higher_is_better=True)
    shutil.rmtree(wh, ignore_errors=True)
    dt, rss, _ = peak_rss(cxr_cmd)
    print(f"  peak RSS of cxr ingest --images: {rss:.0f} MiB (target < 300), {dt:.2f} s")


def bench_full(count=112120):
    print(f"full size: synthetic tar of {count:,} PNGs, one run", flush=True)
    tar = synth_tar(count)
    print(f"  tar: {os.path.getsize(tar) / 1e9:.2f} GB")
    wh = os.path.join(OUT, "wh-full")
    shutil.rmtree(wh, ignore_errors=True)
    run([REF, tar]) if os.path.getsize(tar) < 2e9 else None  # warms the page cache
    dt, rss, _ = peak_rss([CXR, "ingest", "--images", tar, "--warehouse", wh])
    print(f"  cxr ingest --images: {dt:.1f} s ({count / dt:,.0f} images/s), peak RSS {rss:.0f} MiB (target < 300)")
    shutil.rmtree(wh, ignore_errors=True)


def bench_interop():
    print("interop (pyarrow 14 and newest + pandas, polars, DuckDB, Spark 3.5 read every Parquet file cxr writes)")
    subprocess.run([os.path.join(ROOT, "bench", "interop", "run.sh"), CXR], check=True)


def table():
    print()
    print("| question | cxr | peer | ratio | target | holds | timed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for q, c, p, r, t, ok, what, same in RESULTS:
        rate = "img/s" in q
        print(f"| {q} | {fmt(c, rate)} | {fmt(p, rate)} | {r:.2f} | {t} | "
              f"{'yes' if ok else 'NO'}{'' if same else ' (answers differ)'} | {what} |")


def main():
    global RUNS
    args = sys.argv[1:]
    if "--runs" in args:
        i = args.index("--runs")
        RUNS = int(args[i + 1])
        del args[i:i + 2]
    os.makedirs(OUT, exist_ok=True)
    sections = args or ["sql", "ingest", "pixels"]
    print(f"cxr benchmarks on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print(f"  cxr:    {CXR}")
    print(f"  ref:    {REF}")
    if not DUCKDB and any(s in sections for s in ("sql", "ingest")):
        sys.exit("the DuckDB CLI binary was not found: pip install duckdb-cli (or set DUCKDB_BIN)")
    if DUCKDB:
        print(f"  duckdb: {DUCKDB} ({run([DUCKDB, '--version'])[1].strip()})")
    for s in sections:
        {"ingest": bench_ingest, "sql": bench_sql, "pixels": bench_pixels, "formats": bench_formats,
         "full": bench_full,
         "datasets": bench_datasets, "across": bench_across,
         "interop": bench_interop}[s]()
    if RESULTS:
        table()
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end (2 shared cores: other work ran meanwhile)")


if __name__ == "__main__":
    main()
