"""Reads every table of a `cxr serve` warehouse with psycopg, SQLAlchemy and pandas,
and checks row counts and types against the Parquet files read by pyarrow, and one
answer against the metadata CSV read by pandas.

usage: pandas_check.py PORT WAREHOUSE METADATA_CSV_GZ
"""
import json
import pathlib
import sys

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy

port, warehouse, metadata = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
manifest = json.loads((warehouse / "manifest.json").read_text())
data = warehouse / manifest["data"]


def parquet_table(name):
    path = data / f"{name}.parquet"
    if path.exists():
        return pq.read_table(path)
    folder = data / name
    return pq.read_table(folder) if folder.is_dir() else None


def kind(arrow_type):
    """What pandas should hold for an Arrow type read over PostgreSQL."""
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    return None


def kind_of_values(series):
    values = series.dropna()
    if values.empty:
        return None
    first = values.iloc[0]
    if isinstance(first, bool):
        return "bool"
    if isinstance(first, (int,)) or pd.api.types.is_integer_dtype(series):
        return "int"
    if isinstance(first, float) or pd.api.types.is_float_dtype(series):
        # an integer column with NULLs comes back as float in pandas
        return "float"
    if isinstance(first, str):
        return "str"
    return type(first).__name__


engine = sqlalchemy.create_engine(f"postgresql+psycopg://cxr@127.0.0.1:{port}/cxr")
checked = 0
with engine.connect() as connection:
    names = pd.read_sql(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' ORDER BY table_name",
        connection,
    )["table_name"].tolist()
    tables = [n for n in manifest["tables"] if n in names]
    missing = sorted(set(manifest["tables"]) - set(names))
    assert not missing, f"tables the manifest lists but the server does not: {missing}"
    for name in tables:
        frame = pd.read_sql(sqlalchemy.text(f'SELECT * FROM "{name}"'), connection)
        expected = parquet_table(name)
        assert expected is not None, name
        assert len(frame) == expected.num_rows, (name, len(frame), expected.num_rows)
        assert list(frame.columns) == expected.column_names, (name, list(frame.columns))
        for field in expected.schema:
            want = kind(field.type)
            got = kind_of_values(frame[field.name])
            if want is None or got is None:
                continue
            if want == "int" and got == "float":
                assert frame[field.name].isna().any(), (name, field.name)
                continue
            assert want == got, (name, field.name, str(field.type), got)
        checked += 1

# SQLAlchemy's reflection, as pandas' read_sql_table and an ORM use it: the columns
# of each table in the Parquet file's order, no primary key or index (cxr's tables
# have none), and read_sql_table reads every row.
inspector = sqlalchemy.inspect(engine)
assert sorted(inspector.get_table_names()) == sorted(tables), inspector.get_table_names()
# Its schema names leave out pg_* (a LIKE with ESCAPE '/', which cxr rewrites).
schemas = inspector.get_schema_names()
assert "public" in schemas and not any(n.startswith("pg_") for n in schemas), schemas
for name in ["images", "patients", "dataset_images"]:
    columns = [c["name"] for c in inspector.get_columns(name)]
    assert columns == parquet_table(name).column_names, (name, columns)
    assert inspector.get_pk_constraint(name)["constrained_columns"] == [], name
    assert inspector.get_indexes(name) == [], name
    assert inspector.get_foreign_keys(name) == [], name
# A view's definition, as SQLAlchemy asks it (pg_get_viewdef of the full column name).
assert inspector.get_view_definition("xr_images").strip() == "SELECT * FROM dataset_images"
frame = pd.read_sql_table("patients", engine)
assert len(frame) == parquet_table("patients").num_rows, len(frame)
assert list(frame.columns) == parquet_table("patients").column_names, list(frame.columns)

# An answer computed by pandas from the CSV, asked through psycopg with a
# parameter (server-side binding).
csv = pd.read_csv(metadata)
csv["Patient Age"] = pd.to_numeric(csv["Patient Age"], errors="coerce")
expected = int(
    ((csv["Patient Gender"] == "M") & (csv["Patient Age"].between(40, 60))).sum()
)
with psycopg.connect(f"host=127.0.0.1 port={port} user=cxr dbname=cxr") as conn:
    row = conn.execute(
        "SELECT count(*) FROM images WHERE sex = %s AND age BETWEEN %s AND %s",
        ("M", 40, 60),
    ).fetchone()
    assert row[0] == expected, (row[0], expected)
    # Binary results, as drivers ask for them.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT patient_id, age, sex FROM images ORDER BY image_index LIMIT 1")
        first = cur.fetchone()
    top = csv.sort_values("Image Index").iloc[0]
    assert first == (int(top["Patient ID"]), int(top["Patient Age"]), top["Patient Gender"]), first
    # A 1-byte integer column (n_labels) in binary: the number of findings.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT image_index, n_labels FROM images ORDER BY image_index LIMIT 50")
        got = dict(cur.fetchall())
    for _, row in csv.sort_values("Image Index").head(50).iterrows():
        labels = [l for l in row["Finding Labels"].split("|") if l != "No Finding"]
        assert got[row["Image Index"]] == len(labels), (row["Image Index"], got[row["Image Index"]])
    # COPY TO STDOUT, one row per message: psycopg reads every row.
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT image_index FROM images) TO STDOUT") as copy:
            copied = sum(1 for _ in copy.rows())
    assert copied == len(csv), (copied, len(csv))
    # A float parameter against an integer column compares as PostgreSQL does (ages
    # above 50.5), and None binds as NULL, typed or not.
    above = int((csv["Patient Age"] > 50.5).sum())
    row = conn.execute("SELECT count(*) FROM images WHERE age > %s", (50.5,)).fetchone()
    assert row[0] == above, (row[0], above)
    row = conn.execute(
        "SELECT count(*) FROM images WHERE sex = %s OR %s IS NULL", (None, None)
    ).fetchone()
    assert row[0] == len(csv), row
    assert conn.execute("SELECT %s AS x", (None,)).fetchone() == (None,)
    # A named (server-side) cursor, with a parameter: described before it is read
    # (psycopg crashed on a cursor described with no columns), every row read.
    with conn.cursor(name="chunks") as cur:
        cur.execute("SELECT image_index, age FROM images WHERE age > %s", (50,))
        assert cur.description is not None and [d.name for d in cur.description] == ["image_index", "age"], cur.description
        read = sum(1 for _ in cur)
    assert read == int((csv["Patient Age"] > 50).sum()), read
    # A bare parameter takes the type psycopg sends it with (float8, bool, int2),
    # as PostgreSQL types it: the values come back as Python's own.
    with conn.cursor() as cur:
        cur.execute("SELECT %s AS x, %s AS y, %s AS z", (1.5, True, 7))
        assert cur.fetchone() == (1.5, True, 7)
        assert [c.type_code for c in cur.description] == [701, 16, 21], cur.description
    # Parameters nothing in the statement types take psycopg's types and add as
    # integers (PostgreSQL's sum of int2 and int4 is int4; cxr's is int8); one psycopg
    # leaves untyped (every str) is text (oid 25), as PostgreSQL resolves an unknown;
    # an int4 or int8 against a SMALLINT column compares in its own type (no row, not
    # an out-of-range error).
    with conn.cursor() as cur:
        cur.execute("SELECT %s + %s AS s, %s AS t", (1, 100000, "text"))
        assert cur.fetchone() == (100001, "text")
        assert [c.type_code for c in cur.description][1:] == [25], cur.description
        assert cur.description[0].type_code in (20, 23), cur.description
    # So too a timestamp, a time and a list (psycopg sends them as timestamp, time
    # and int2[]; they were `unknown` and came back as text).
    import datetime
    with conn.cursor() as cur:
        when, at = datetime.datetime(2020, 1, 2, 3, 4, 5), datetime.time(3, 4, 5)
        cur.execute("SELECT %s AS t, %s AS h, %s AS a", (when, at, [1, 2]))
        assert cur.fetchone() == (when, at, [1, 2])
        assert [c.type_code for c in cur.description] == [1114, 1083, 1005], cur.description
    # A numeric whose digits start after the point (0.05: one digit, scale 2) binds
    # as PostgreSQL's numeric does, compared with a float column as a number.
    import decimal
    row = conn.execute("SELECT %s::numeric * 2 AS n", (decimal.Decimal("0.05"),)).fetchone()
    assert decimal.Decimal(row[0]) == decimal.Decimal("0.1"), row
    for big in (100000, 2**40):
        above = int((csv["Patient Age"] > big).sum())
        row = conn.execute("SELECT count(*) FROM images WHERE age > %s", (big,)).fetchone()
        assert row[0] == above, (big, row[0], above)
        below = int((csv["Patient Age"] < big).sum())
        row = conn.execute("SELECT count(*) FROM images WHERE age < %s", (big,)).fetchone()
        assert row[0] == below, (big, row[0], below)
    # Ranks are bigint, as PostgreSQL types them (oid 20): Python ints, not Decimal.
    with conn.cursor() as cur:
        cur.execute("SELECT row_number() OVER () AS n, rank() OVER () AS r FROM images LIMIT 1")
        assert [c.type_code for c in cur.description] == [20, 20], cur.description
        assert cur.fetchone() == (1, 1)
    # current_user is the login name, as PostgreSQL gives it, and each column is
    # named after its function (PostgreSQL's names), in a COPY too.
    assert conn.execute("SELECT current_user").fetchone() == ("cxr",)
    with conn.cursor() as cur:
        cur.execute("SELECT current_user, session_user")
        assert [c.name for c in cur.description] == ["current_user", "session_user"], cur.description
        assert cur.fetchone() == ("cxr", "cxr")
        with cur.copy("COPY (SELECT current_user) TO STDOUT") as copy:
            assert b"".join(bytes(block) for block in copy) == b"cxr\n"
    # A correlated subquery in the select list, with a parameter (the extended
    # protocol): each patient's images, as pandas counts them.
    rows = conn.execute(
        "SELECT p.patient_id, (SELECT count(*) FROM images i WHERE i.patient_id = p.patient_id) AS n "
        "FROM patients p WHERE p.patient_id <= %s ORDER BY p.patient_id",
        (5,),
    ).fetchall()
    counts = csv[csv["Patient ID"] <= 5].groupby("Patient ID").size()
    assert rows == [(int(p), int(n)) for p, n in counts.items()], rows
    # A function call is named after the function, as PostgreSQL names it; other
    # unnamed expressions as cxr sql names them.
    with conn.cursor() as cur:
        cur.execute("SELECT 1 + 1, upper('x'), count(*) FROM images")
        assert [c.name for c in cur.description] == ["1 + 1", "upper", "count"], cur.description
    frame = pd.read_sql("SELECT sex, count(*), avg(age)::int FROM images GROUP BY sex", engine)
    assert list(frame.columns) == ["sex", "count", "avg"], frame.columns
    # A UNION is described with the type its rows are sent in (the first branch's
    # type was announced, and binary clients read garbage): values as pandas has them.
    first, last = csv.sort_values("Image Index").iloc[0], csv.sort_values("Image Index").iloc[-1]
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT 1 AS v UNION ALL SELECT 2.5 ORDER BY v")
        assert cur.fetchall() == [(1.0,), (2.5,)]
        cur.execute(
            "SELECT age AS v FROM images WHERE image_index = %s "
            "UNION ALL SELECT patient_id FROM images WHERE image_index = %s",
            (first["Image Index"], last["Image Index"]),
        )
        assert sorted(v for (v,) in cur.fetchall()) == sorted(
            [int(first["Patient Age"]), int(last["Patient ID"])]
        )

# Savepoints as psycopg uses them (a nested transaction block): a failure inside
# rolls back to the savepoint, the outer transaction and its SET LOCAL stay.
with psycopg.connect(f"host=127.0.0.1 port={port} user=cxr dbname=cxr") as conn:
    with conn.transaction():
        conn.execute("SET LOCAL statement_timeout = '7s'")
        try:
            with conn.transaction():
                conn.execute("SET LOCAL statement_timeout = '3s'")
                conn.execute("SELECT 1 / 0")
        except psycopg.errors.DivisionByZero:
            pass
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SHOW statement_timeout").fetchone() == ("7s",)
        assert conn.execute("SELECT count(*) FROM images").fetchone() == (len(csv),)
    # A named cursor whose query fails is closed without a second error.
    try:
        with conn.transaction():
            with conn.cursor(name="broken") as cur:
                cur.execute("SELECT no_such_column FROM images")
    except psycopg.errors.UndefinedColumn:
        pass
    assert conn.execute("SELECT 1").fetchone() == (1,)
    conn.commit()
    # DISCARD ALL, as a connection pool resets a session: settings and prepared
    # statements of the last user are gone.
    conn.autocommit = True
    conn.execute("SET statement_timeout = '5s'")
    conn.execute("PREPARE mine AS SELECT 1")
    conn.execute("DISCARD ALL")
    assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    try:
        conn.execute("EXECUTE mine")
        raise AssertionError("EXECUTE after DISCARD ALL answered")
    except psycopg.errors.InvalidSqlStatementName:
        pass

# A read-only, deferrable transaction as psycopg begins one (BEGIN READ ONLY
# DEFERRABLE), and a WITH HOLD cursor read after its transaction ended.
with psycopg.connect(f"host=127.0.0.1 port={port} user=cxr dbname=cxr") as conn:
    conn.read_only = True
    conn.deferrable = True
    assert conn.execute("SELECT count(*) FROM images").fetchone() == (len(csv),)
    conn.commit()
    with conn.cursor(name="kept", withhold=True) as cur:
        cur.execute("SELECT image_index FROM images ORDER BY image_index")
        conn.commit()
        assert cur.fetchone() == (sorted(csv["Image Index"])[0],)

print(f"tables checked: {checked}")
