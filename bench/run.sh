#!/usr/bin/env bash
# Benchmarks: builds cxr in release mode and prints the figures the issues ask for,
# with DuckDB's CLI as the peer on the same data in the same run.
#   bench/run.sh            # everything
#   bench/run.sh ingest sql # some sections: ingest, sql, pixels
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin cxr --example read_decode 2>&1 | tail -n 1 >&2
if ! command -v duckdb >/dev/null 2>&1; then
    pip install --quiet duckdb-cli >&2 || echo "duckdb-cli could not be installed; DuckDB figures skipped" >&2
fi
exec python3 bench/bench.py "$@"
