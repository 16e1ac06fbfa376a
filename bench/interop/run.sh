#!/usr/bin/env bash
# Interop check: every Parquet file cxr writes, read by pyarrow 14 + pandas 2.1 (old),
# the newest pyarrow + pandas, polars, DuckDB and Spark 3.5 (local mode).
#
#   bench/interop/run.sh [CXR_BIN [SCRATCH_DIR]]
#   bench/interop/run.sh --setup-only     # only create the venvs (e.g. to warm a CI cache)
#
# CXR_BIN     the cxr binary (default: $CXR_BIN, else target/release/cxr in the repo)
# SCRATCH_DIR where the warehouse and exports are written (default: a new temp dir,
#             removed at the end unless CXR_INTEROP_KEEP=1; a given one is kept)
#
# Environment:
#   CXR_INTEROP_CACHE    venvs live here (default ${XDG_CACHE_HOME:-$HOME/.cache}/cxr-interop)
#   CXR_INTEROP_REFRESH=1  rebuild both venvs (e.g. to pick up newer "newest" versions)
#   CXR_INTEROP_READERS  comma list of readers to run (default: all:
#                        pyarrow14,pyarrow_new,polars,duckdb,spark)
#   CXR_INTEROP_SELFTEST=0 skip the self-test (view-typed and wrong-targets files
#                        that must be reported as FAIL)
#
# Prints one line per (file, reader), then `interop: N passed, M failed`; exits 1 when
# anything failed. pip's log goes to CACHE/pip.log, cxr's and each reader's (Spark's) to
# SCRATCH_DIR/logs; none to stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SETUP_ONLY=0
if [[ "${1:-}" == "--setup-only" ]]; then
    SETUP_ONLY=1
    shift
fi
CXR="${1:-${CXR_BIN:-$ROOT/target/release/cxr}}"
case "$CXR" in /*) ;; *) CXR="$(pwd)/$CXR" ;; esac
if [[ $SETUP_ONLY == 0 && ! -x "$CXR" ]]; then
    echo "interop: no cxr binary at $CXR (build it: cargo build --release)" >&2
    exit 2
fi
if [[ $SETUP_ONLY == 1 ]]; then
    SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/cxr-interop.XXXXXX")"
    KEEP=0
elif [[ $# -ge 2 ]]; then
    SCRATCH="$2"
    KEEP=1
else
    SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/cxr-interop.XXXXXX")"
    KEEP="${CXR_INTEROP_KEEP:-0}"
fi
mkdir -p "$SCRATCH"
SCRATCH="$(cd "$SCRATCH" && pwd)"
LOGS="$SCRATCH/logs"
mkdir -p "$LOGS"
CACHE="${CXR_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxr-interop}"
mkdir -p "$CACHE"
PIPLOG="$CACHE/pip.log"
READERS="${CXR_INTEROP_READERS:-pyarrow14,pyarrow_new,polars,duckdb,spark}"
PY="${PYTHON:-python3}"

t0=$SECONDS
note() { echo "interop: $*" >&2; }

# --- virtual environments -----------------------------------------------------------
# OLD: the oldest stack the contract promises (pyarrow 14, pandas 2.1, numpy 1.x).
# NEW: the newest pyarrow, pandas, polars, duckdb and Spark 3.5.
OLD_REQS=("pyarrow==14.0.2" "pandas==2.1.4" "numpy<2")
NEW_REQS=("pyarrow" "pandas" "polars" "duckdb" "pyspark==3.5.*")

# Creates (or reuses) a venv whose stamp file records the requirements it was made with.
ensure_venv() {
    local dir="$1"; shift
    local want="$*"
    if [[ "${CXR_INTEROP_REFRESH:-0}" != 1 && -x "$dir/bin/python" \
          && -f "$dir/.cxr-interop-reqs" && "$(cat "$dir/.cxr-interop-reqs")" == "$want" ]] \
          && "$dir/bin/python" -c 'import sys' 2>/dev/null; then
        return 0
    fi
    note "creating $dir ($want); pip log: $PIPLOG"
    rm -rf "$dir"
    "$PY" -m venv "$dir"
    if ! { "$dir/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
           && "$dir/bin/python" -m pip install --disable-pip-version-check --prefer-binary "$@"; } \
           >>"$PIPLOG" 2>&1; then
        tail -n 20 "$PIPLOG" >&2
        note "pip failed for $dir"
        rm -rf "$dir"
        return 1
    fi
    echo "$want" >"$dir/.cxr-interop-reqs"
}
# The two venvs install one after the other into separate directories; a lock keeps two
# concurrent runs from building the same venv at once.
exec 9>"$CACHE/.lock"
flock 9 2>/dev/null || true
ensure_venv "$CACHE/old" "${OLD_REQS[@]}"
ensure_venv "$CACHE/new" "${NEW_REQS[@]}"
flock -u 9 2>/dev/null || true
OLD_PY="$CACHE/old/bin/python"
NEW_PY="$CACHE/new/bin/python"
t_env=$((SECONDS - t0))
if [[ $SETUP_ONLY == 1 ]]; then
    rm -rf "$SCRATCH"
    note "venvs ready in $CACHE (${t_env} s)"
    exit 0
fi

# Spark needs a JVM (17 on this project's machines). Install one on a bare CI machine.
if [[ ",$READERS," == *",spark,"* ]] && ! command -v java >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        note "no java: installing openjdk-17-jre-headless (log: $LOGS/apt.log)"
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jre-headless; } \
            >>"$LOGS/apt.log" 2>&1 || note "java could not be installed; the Spark reader will fail"
    fi
fi

# --- produce every Parquet file -----------------------------------------------------
t1=$SECONDS
"$NEW_PY" "$HERE/produce.py" --cxr "$CXR" --scratch "$SCRATCH" --repo "$ROOT"
t_produce=$((SECONDS - t1))

# --- read them with every reader ----------------------------------------------------
t2=$SECONDS
RESULTS="$SCRATCH/results"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
run_reader() {
    local py="$1" reader="$2"
    [[ ",$READERS," == *",$reader,"* ]] || return 0
    local s=$SECONDS
    "$py" "$HERE/read.py" --plan "$SCRATCH/plan.json" --reader "$reader" \
        --out "$RESULTS/$reader.json" >"$LOGS/$reader.log" 2>&1 \
        || note "reader $reader crashed (see $LOGS/$reader.log)"
    note "reader $reader: $((SECONDS - s)) s"
}
run_reader "$OLD_PY" pyarrow14
run_reader "$NEW_PY" pyarrow_new
run_reader "$NEW_PY" polars
run_reader "$NEW_PY" duckdb
run_reader "$NEW_PY" spark
t_read=$((SECONDS - t2))

set +e
# First the check checks itself: a view-typed file must fail with pyarrow 14, wrong
# targets must fail everywhere (a few seconds; CXR_INTEROP_SELFTEST=0 skips it).
self_rc=0
if [[ "${CXR_INTEROP_SELFTEST:-1}" != 0 ]]; then
    "$NEW_PY" "$HERE/selftest.py" --scratch "$SCRATCH" --old-python "$OLD_PY" --new-python "$NEW_PY"
    self_rc=$?
fi
"$NEW_PY" "$HERE/compare.py" --plan "$SCRATCH/plan.json" --results "$RESULTS" --readers "$READERS"
rc=$?
[[ $self_rc == 0 ]] || rc=1
set -e
note "time: venvs ${t_env} s, cxr ${t_produce} s, readers ${t_read} s, total $((SECONDS - t0)) s"
if [[ "$KEEP" == 1 || $rc != 0 ]]; then
    note "files and logs kept in $SCRATCH"
else
    rm -rf "$SCRATCH"
fi
exit $rc
