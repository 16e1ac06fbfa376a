"""Reads every file of plan.json with one reader and records what it saw.

    read.py --plan plan.json --reader R --out R.json

Readers: pyarrow14 / pyarrow_new (pyarrow + pandas of the venv it runs in), polars,
duckdb, spark. Nothing is judged here except the per-reader `targets` check; compare.py
compares the readers with each other and with the plan's expectations.

Type classes: string, int, float, bool, list (List, LargeList, FixedSizeList, arrays),
struct, binary, temporal, or other:<type>.
"""

import argparse
import json
import os
import sys
import time
import traceback


def short_error(e):
    """`ArrowInvalid: Unrecognized type: 24`: the exception's type and first line."""
    msg = str(e).strip().splitlines()
    first = msg[0] if msg else ""
    # Py4J wraps Spark's exception: keep the Java exception's first line.
    if type(e).__name__ in ("Py4JJavaError", "AnalysisException", "SparkException") or "java" in first:
        for line in msg:
            line = line.strip()
            if line and not line.startswith(("An error occurred", "at ", ":")):
                first = line
                break
    return f"{type(e).__name__}: {first[:300]}"


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def part_key(k):
    """A partition value as text; NULL as the hive directory name for it."""
    if k is None or (isinstance(k, float) and k != k):
        return HIVE_NULL
    return str(k)


def expected_targets(labels, order):
    s = set(labels) if labels is not None else set()
    return [1.0 if f in s else 0.0 for f in order]


def check_targets_rows(labels_col, targets_col, order):
    """Python-level check: every targets vector has 14 values, 1.0 exactly where labels
    has the finding and 0.0 otherwise. Returns (mismatches, first example)."""
    bad, example = 0, None
    for i, (lab, tg) in enumerate(zip(labels_col, targets_col)):
        exp = expected_targets(lab, order)
        got = None if tg is None else [float(x) for x in tg]
        if got != exp:
            bad += 1
            if example is None:
                example = f"row {i}: labels={list(lab) if lab is not None else None} targets={got}"
    return bad, example


# --- pyarrow + pandas ------------------------------------------------------------------

def pa_class(t):
    import pyarrow as pa
    import pyarrow.types as T

    if T.is_dictionary(t):
        return pa_class(t.value_type)
    if T.is_string(t) or T.is_large_string(t) or str(t) == "string_view":
        return "string"
    if T.is_integer(t):
        return "int"
    if T.is_floating(t) or T.is_decimal(t):
        return "float"
    if T.is_boolean(t):
        return "bool"
    if T.is_list(t) or T.is_large_list(t) or T.is_fixed_size_list(t) or str(t).startswith("list_view"):
        return "list"
    if T.is_struct(t):
        return "struct"
    if T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t):
        return "binary"
    if T.is_temporal(t):
        return "temporal"
    if T.is_null(t):
        return "null"
    return f"other:{t}"


def read_pyarrow(unit, order):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    r = {"versions": {"pyarrow": pa.__version__, "pandas": pd.__version__}}
    path = unit["path"]
    # The finding order, from the file's own key-value metadata as this pyarrow reads it.
    f0 = unit["files"][0] if unit["files"] else None
    kv = (pq.read_metadata(f0).metadata or {}) if f0 else {}
    r["kv_keys"] = sorted(k.decode() for k in kv if k != b"ARROW:schema")
    if b"cxr.targets" in kv:
        order = json.loads(kv[b"cxr.targets"])
    if unit["kind"] == "dataset":
        table = pq.read_table(path, partitioning="hive")
    else:
        table = pq.read_table(path)
    r["rows"] = table.num_rows
    r["columns"] = [[f.name, pa_class(f.type), str(f.type)] for f in table.schema]
    # pandas, as a user would call it
    df = pd.read_parquet(path)
    r["pandas_rows"] = len(df)
    r["pandas_columns"] = list(map(str, df.columns))
    if "targets" in df.columns:
        tfield = table.schema.field("targets").type
        r["targets_item_float32"] = str(getattr(tfield, "value_type", "")) in ("float", "float32")
        if "labels" in df.columns and order:
            bad, ex = check_targets_rows(df["labels"], df["targets"], order)
            r["targets_check"] = {"by": "pandas", "rows": len(df), "mismatches": bad, "example": ex}
            # element dtype of the numpy arrays pandas hands out
            first = next((v for v in df["targets"] if v is not None), None)
            r["targets_numpy_dtype"] = str(getattr(first, "dtype", type(first).__name__))
    if unit.get("partition"):
        col = unit["partition"]["column"]
        if col in df.columns:
            vc = df[col].astype(object).value_counts(dropna=False)
            r["partition_counts"] = {part_key(k): int(v) for k, v in vc.items()}
    # provenance in the Arrow schema's metadata too (where pandas looks)
    sm = table.schema.metadata or {}
    r["schema_meta_keys"] = sorted(k.decode() for k in sm if not k.startswith(b"ARROW:") and k != b"pandas")
    return r


# --- polars ----------------------------------------------------------------------------

def pl_class(t):
    import polars as pl

    base = t.base_type() if hasattr(t, "base_type") else t
    if base in (pl.Utf8, pl.String, pl.Categorical, pl.Enum):
        return "string"
    if base in (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64) or \
            (hasattr(pl, "Int128") and base == pl.Int128):
        return "int"
    if base in (pl.Float32, pl.Float64, pl.Decimal):
        return "float"
    if base == pl.Boolean:
        return "bool"
    if base in (pl.List, pl.Array):
        return "list"
    if base == pl.Struct:
        return "struct"
    if base == pl.Binary:
        return "binary"
    if base in (pl.Date, pl.Datetime, pl.Duration, pl.Time):
        return "temporal"
    if base == pl.Null:
        return "null"
    return f"other:{t}"


def read_polars(unit, order):
    import polars as pl

    r = {"versions": {"polars": pl.__version__}}
    if unit["kind"] == "dataset":
        df = pl.read_parquet(os.path.join(unit["path"], "**", "*.parquet"), hive_partitioning=True)
    else:
        df = pl.read_parquet(unit["path"])
    r["rows"] = df.height
    r["columns"] = [[n, pl_class(t), str(t)] for n, t in df.schema.items()]
    if "targets" in df.columns:
        t = df.schema["targets"]
        r["targets_item_float32"] = getattr(t, "inner", None) == pl.Float32
        if "labels" in df.columns and order:
            bad, ex = check_targets_rows(df["labels"].to_list(), df["targets"].to_list(), order)
            r["targets_check"] = {"by": "polars", "rows": df.height, "mismatches": bad, "example": ex}
    if unit.get("partition"):
        col = unit["partition"]["column"]
        if col in df.columns:
            vc = df.group_by(col).len()
            r["partition_counts"] = {part_key(k): int(v) for k, v in vc.iter_rows()}
    return r


# --- DuckDB ----------------------------------------------------------------------------

def duck_class(t):
    t = t.upper()
    if t.endswith("]"):
        return "list"
    if t.startswith(("VARCHAR", "ENUM")):
        return "string"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "UHUGEINT"):
        return "int"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    if t == "BOOLEAN":
        return "bool"
    if t.startswith(("STRUCT", "MAP", "UNION")):
        return "struct"
    if t == "BLOB":
        return "binary"
    if t.startswith(("DATE", "TIME", "INTERVAL")):
        return "temporal"
    if t == "NULL":
        return "null"
    return f"other:{t}"


_duck = None


def read_duckdb(unit, order):
    global _duck
    import duckdb

    if _duck is None:
        _duck = duckdb.connect()
        _duck.execute("SET threads = 2")
    con = _duck
    r = {"versions": {"duckdb": duckdb.__version__}}
    p = unit["path"].replace("'", "''")
    src = (f"read_parquet('{p}/**/*.parquet', hive_partitioning = true)" if unit["kind"] == "dataset"
           else f"read_parquet('{p}')")
    cols = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    r["columns"] = [[c[0], duck_class(c[1]), c[1]] for c in cols]
    r["rows"] = con.execute(f"SELECT COUNT(*) FROM {src}").fetchone()[0]
    names = [c[0] for c in cols]
    if "targets" in names:
        ttype = dict((c[0], c[1]) for c in cols)["targets"]
        r["targets_item_float32"] = ttype.upper().startswith("FLOAT[")
        if "labels" in names and order:
            conds = [f"len(CAST(targets AS FLOAT[])) <> {len(order)}"]
            for k, f in enumerate(order, start=1):
                fq = f.replace("'", "''")
                conds.append(
                    f"targets[{k}] IS DISTINCT FROM "
                    f"CAST(CASE WHEN coalesce(list_contains(labels, '{fq}'), false) THEN 1.0 ELSE 0.0 END AS FLOAT)")
            bad = con.execute(f"SELECT COUNT(*) FILTER (WHERE targets IS NULL OR {' OR '.join(conds)}) FROM {src}"
                              ).fetchone()[0]
            r["targets_check"] = {"by": "duckdb SQL", "rows": r["rows"], "mismatches": bad, "example": None}
    if unit.get("partition"):
        col = unit["partition"]["column"]
        if col in names:
            rows = con.execute(f'SELECT CAST("{col}" AS VARCHAR), COUNT(*) FROM {src} GROUP BY 1').fetchall()
            r["partition_counts"] = {part_key(k): int(v) for k, v in rows}
    if unit["files"]:
        f0 = unit["files"][0].replace("'", "''")
        kv = con.execute(f"SELECT CAST(key AS VARCHAR) FROM parquet_kv_metadata('{f0}')").fetchall()
        r["kv_keys"] = sorted(k[0] for k in kv if k[0] != "ARROW:schema")
    return r


# --- Spark -----------------------------------------------------------------------------

_spark = None


def spark_session():
    global _spark
    if _spark is None:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        from pyspark.sql import SparkSession

        _spark = (
            SparkSession.builder.master("local[2]")
            .appName("cxr-interop")
            .config("spark.driver.memory", "1g")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        _spark.sparkContext.setLogLevel("ERROR")
    return _spark


def spark_class(t):
    from pyspark.sql import types as T

    if isinstance(t, (T.StringType, T.VarcharType, T.CharType)):
        return "string"
    if isinstance(t, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "int"
    if isinstance(t, (T.FloatType, T.DoubleType, T.DecimalType)):
        return "float"
    if isinstance(t, T.BooleanType):
        return "bool"
    if isinstance(t, T.ArrayType):
        return "list"
    if isinstance(t, (T.StructType, T.MapType)):
        return "struct"
    if isinstance(t, T.BinaryType):
        return "binary"
    if isinstance(t, (T.DateType, T.TimestampType, T.TimestampNTZType, T.DayTimeIntervalType)):
        return "temporal"
    if isinstance(t, T.NullType):
        return "null"
    return f"other:{t.simpleString()}"


def read_spark(unit, order):
    import pyspark
    from pyspark.sql import types as T

    spark = spark_session()
    r = {"versions": {"pyspark": pyspark.__version__, "java": os.environ.get("JAVA_VERSION_SEEN", "")}}
    # A partitioned directory is read as a dataset: Spark discovers col=value/.
    df = spark.read.parquet(unit["path"])
    r["columns"] = [[f.name, spark_class(f.dataType), f.dataType.simpleString()] for f in df.schema.fields]
    r["rows"] = df.count()
    names = df.columns
    if "targets" in names:
        tt = df.schema["targets"].dataType
        r["targets_item_float32"] = isinstance(tt, T.ArrayType) and isinstance(tt.elementType, T.FloatType)
        if "labels" in names and order:
            conds = [f"size(targets) <> {len(order)}"]
            for k, f in enumerate(order):
                fq = f.replace("'", "\\'")
                conds.append(
                    f"NOT (targets[{k}] <=> CAST(CASE WHEN coalesce(array_contains(labels, '{fq}'), false) "
                    f"THEN 1.0 ELSE 0.0 END AS FLOAT))")
            bad = df.selectExpr(
                f"SUM(CASE WHEN targets IS NULL OR {' OR '.join(conds)} THEN 1 ELSE 0 END) AS bad"
            ).collect()[0]["bad"]
            r["targets_check"] = {"by": "Spark SQL", "rows": r["rows"], "mismatches": int(bad or 0), "example": None}
    if unit.get("partition"):
        col = unit["partition"]["column"]
        if col in names:
            rows = df.groupBy(col).count().collect()
            r["partition_counts"] = {part_key(row[0]): int(row[1]) for row in rows}
    return r


def reader_versions(reader):
    """The versions of the reader's libraries, for the report (even when nothing reads)."""
    mods = {"pyarrow14": ["pyarrow", "pandas"], "pyarrow_new": ["pyarrow", "pandas"], "polars": ["polars"],
            "duckdb": ["duckdb"], "spark": ["pyspark"]}[reader]
    out = {}
    for m in mods:
        try:
            out[m] = __import__(m).__version__
        except Exception as e:  # noqa: BLE001
            out[m] = f"not importable ({type(e).__name__})"
    return out


READERS = {
    "pyarrow14": read_pyarrow,
    "pyarrow_new": read_pyarrow,
    "polars": read_polars,
    "duckdb": read_duckdb,
    "spark": read_spark,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", required=True)
    ap.add_argument("--reader", required=True, choices=sorted(READERS))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.plan) as f:
        plan = json.load(f)
    fn = READERS[a.reader]
    results = {}
    versions = reader_versions(a.reader)
    setup_error = None
    if a.reader == "spark":
        try:
            import shutil
            import subprocess

            java = shutil.which("java")
            if not java:
                raise RuntimeError("java not found on PATH (Spark needs Java 17)")
            v = subprocess.run([java, "-version"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            os.environ["JAVA_VERSION_SEEN"] = (v.stderr.splitlines() or [""])[0]
            spark_session()
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            setup_error = "Spark did not start: " + short_error(e)
    for unit in plan["units"]:
        t = time.time()
        if setup_error:
            results[unit["name"]] = {"error": setup_error, "versions": versions}
            continue
        try:
            res = fn(unit, unit.get("targets_order"))
        except Exception as e:  # noqa: BLE001 -- every failure is a result
            print(f"--- {unit['name']}", file=sys.stderr)
            traceback.print_exc()
            res = {"error": short_error(e)}
        res["seconds"] = round(time.time() - t, 3)
        res.setdefault("versions", versions)
        results[unit["name"]] = res
        print(f"{unit['name']}: {'error' if 'error' in res else 'read'} in {res['seconds']} s", file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump({"reader": a.reader, "results": results}, f, indent=1)
    if _spark is not None:
        _spark.stop()


if __name__ == "__main__":
    main()
