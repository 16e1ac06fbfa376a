//! cxr: a columnar analytics engine over the NIH ChestX-ray14 metadata and images.
//!
//! The library is organised as the command line is: [`ingest`] builds the Parquet
//! warehouse, [`sql`] opens it in DataFusion, [`output`] prints or writes results,
//! and [`cli`] holds one module per subcommand.

// Linked into every binary of the crate, tests too: the ingest returns freed memory
// to mimalloc between datasets (`ingest::give_back_freed_memory`).
extern crate mimalloc as _;

/// `eprintln!` for diagnostics, without its panic when stderr is closed or full
/// (`2>/dev/full`): a note that cannot be written changes nothing a command does or
/// the exit code it ends with. Every module below uses it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub(crate) mod agree;
pub mod cli;
pub(crate) mod cohort;
pub(crate) mod datasets;
pub mod error;
pub(crate) mod export;
pub(crate) mod findings;
pub mod ingest;
pub(crate) mod input;
pub mod output;
pub mod pixels;
pub(crate) mod serve;
pub(crate) mod split;
pub mod sql;
pub(crate) mod warehouse;

pub use error::{Error, Result};

use std::path::PathBuf;

/// The directory of the shipped NIH metadata: `$CXR_DATA`, else `data/` of the
/// source tree cxr was built from.
pub fn data_dir() -> PathBuf {
    std::env::var_os("CXR_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"))
}

/// The default warehouse: `$CXR_WAREHOUSE`, else `./warehouse`.
pub fn default_warehouse() -> PathBuf {
    std::env::var_os("CXR_WAREHOUSE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("warehouse"))
}

/// Phase timings on stderr when `CXR_TRACE` is set: where the time of a run goes.
pub fn trace(phase: &str, since: std::time::Instant) {
    trace_spent(phase, since.elapsed());
}

/// [`trace`] for time spent in pieces (a result's batches computed, then printed).
pub fn trace_spent(phase: &str, spent: std::time::Duration) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("CXR_TRACE").is_some()) {
        say!(
            "[trace] {phase}: {:.1} ms{}",
            spent.as_secs_f64() * 1e3,
            memory_now()
        );
    }
}

/// The process's resident memory now and at its peak, for [`trace`] (Linux only:
/// empty elsewhere).
fn memory_now() -> String {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return String::new();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb >> 10)
    };
    format!(
        " (resident {} MiB, peak {} MiB)",
        field("VmRSS:"),
        field("VmHWM:")
    )
}
