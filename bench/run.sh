#!/usr/bin/env bash
# Benchmarks: builds cxr and the reference loop in release mode and prints the figures
# issue 10 asks for, with the real DuckDB CLI executable as the peer on the same
# Parquet files in the same run (see bench/bench.py for what each figure times).
#   bench/run.sh                 # sql, ingest, pixels
#   bench/run.sh sql ingest      # some sections: sql, ingest, pixels, formats, full, datasets, across, interop
#   bench/run.sh --runs 5 sql    # fewer runs per median (default 9)
# Honors CARGO_TARGET_DIR; CXR_BIN / CXR_REF / DUCKDB_BIN override the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin cxr --example read_decode 2>&1 | tail -n 1 >&2
if ! python3 -c "import duckdb_cli" 2>/dev/null; then
    pip install --quiet duckdb-cli >&2 || echo "duckdb-cli could not be installed" >&2
fi
if [[ " $* " == *" formats "* ]] && ! python3 -c "import PIL, pydicom, numpy" 2>/dev/null; then
    pip install --quiet Pillow pydicom numpy >&2
fi
exec python3 bench/bench.py "$@"
