//! The `cxr` command line: parse arguments, dispatch, report errors.

use clap::Parser;

// polars, DataFusion and the ingest allocate many small strings; mimalloc is much
// faster at that than the system allocator on these machines.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cxr::cli::Cli::parse();
    if let Err(e) = cxr::cli::run(cli) {
        eprintln!("cxr: error: {e}");
        std::process::exit(e.exit_code());
    }
}
