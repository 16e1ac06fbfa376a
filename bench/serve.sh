#!/usr/bin/env bash
# `cxr serve` against PostgreSQL 15 (Debian's `postgresql`) on the same NIH tables,
# both over psycopg, in the same run; see bench/serve.py for what is timed.
#   bench/serve.sh                       # 30 runs per question, 16 clients for 60 s
#   bench/serve.sh --runs 10 --seconds 20
# Needs root (it installs postgresql if missing and runs a private cluster as the
# postgres user in a temporary folder). Honors CARGO_TARGET_DIR and CXR_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin cxr 2>&1 | tail -n 1 >&2
target="${CARGO_TARGET_DIR:-$PWD/target}"
cxr="${CXR_BIN:-$target/release/cxr}"
pg_bin=/usr/lib/postgresql/15/bin
[ -x "$pg_bin/postgres" ] || { apt-get update -q && apt-get install -y -q postgresql; } >&2
venv="$target/bench-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "psycopg[binary]" pyarrow >&2

work="$(mktemp -d)"
chmod 755 "$work"
pg_port=5498
cxr_port=5497
cleanup() {
    [ -n "${cxr_pid:-}" ] && kill "$cxr_pid" 2>/dev/null || true
    su postgres -c "$pg_bin/pg_ctl -D $work/pg -m fast stop" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== warehouse: cxr ingest --no-images of the shipped metadata" >&2
"$cxr" ingest --no-images -w "$work/wh" >/dev/null

echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}'): the same tables, indexed" >&2
mkdir "$work/pg" && chown postgres "$work/pg"
su postgres -c "$pg_bin/initdb -D $work/pg --auth=trust -U postgres" >/dev/null
su postgres -c "$pg_bin/pg_ctl -D $work/pg -l $work/pg/server.log -w -o '-p $pg_port -k $work/pg -c work_mem=64MB -c shared_buffers=256MB' start" >/dev/null
pg_dsn="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
"$venv/bin/python" - "$work/wh" "$pg_dsn" <<'PY'
import json, pathlib, sys
import psycopg, pyarrow.parquet as pq
wh, dsn = pathlib.Path(sys.argv[1]), sys.argv[2]
data = wh / json.loads((wh / "manifest.json").read_text())["data"]
images = pq.read_table(data / "images.parquet").drop_columns(["labels"])
findings = pq.read_table(data / "findings.parquet")
pg_type = {"string": "text", "int32": "integer", "int16": "smallint", "int8": "smallint",
           "double": "double precision", "bool": "boolean", "large_string": "text"}
with psycopg.connect(dsn, autocommit=True) as conn:
    for name, table in [("images", images), ("findings", findings)]:
        cols = ", ".join(f"{f.name} {pg_type[str(f.type)]}" for f in table.schema)
        conn.execute(f"CREATE TABLE {name} ({cols})")
        with conn.cursor().copy(f"COPY {name} FROM STDIN") as copy:
            for row in zip(*[c.to_pylist() for c in table.columns]):
                copy.write_row(row)
    conn.execute("CREATE UNIQUE INDEX ON images (image_index)")
    conn.execute("CREATE INDEX ON images (patient_id, follow_up)")
    conn.execute("CREATE INDEX ON findings (image_index)")
    conn.execute("CREATE INDEX ON findings (label)")
    conn.execute("ANALYZE")
    print(f"loaded {images.num_rows} images, {findings.num_rows} findings", file=sys.stderr)
PY

echo "== cxr serve" >&2
"$cxr" serve -w "$work/wh" --listen "127.0.0.1:$cxr_port" 2>"$work/serve.log" &
cxr_pid=$!
for _ in $(seq 1 600); do
    grep -q "listening on" "$work/serve.log" && break
    sleep 0.1
done
echo "cxr: $cxr ($("$cxr" --version)), PostgreSQL: $pg_bin/postgres, client: psycopg $("$venv/bin/python" -c 'import psycopg; print(psycopg.__version__)'); $(nproc) cores, $(date -u +%F)"
"$venv/bin/python" bench/serve.py "$cxr_port" "$cxr_pid" "$pg_dsn" "$@"
