//! The `cxr` command line: parse arguments, dispatch, report errors.

use clap::Parser;

fn main() {
    let cli = cxr::cli::Cli::parse();
    if let Err(e) = cxr::cli::run(cli) {
        eprintln!("cxr: error: {e}");
        std::process::exit(e.exit_code());
    }
}
