//! `cxr inspect`: what a Parquet file says about itself — schema, row groups and
//! their codec, and the key-value metadata (provenance of exports).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::warehouse::parquet::describe;

/// Arguments of `cxr inspect`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  cxr inspect pa.parquet\n  cxr inspect dataset/")]
pub struct InspectCmd {
    /// A Parquet file, or a directory of them.
    pub path: PathBuf,
}

/// Runs `cxr inspect`.
pub fn run(cmd: InspectCmd) -> Result<()> {
    if !cmd.path.exists() {
        return Err(Error::Usage(format!(
            "{}: no such file or directory",
            cmd.path.display()
        )));
    }
    if !cmd.path.is_dir() && !cmd.path.is_file() {
        return Err(Error::Usage(format!(
            "{}: not a regular file or a directory (a device or a pipe); name a Parquet file or a folder of them",
            cmd.path.display()
        )));
    }
    let files = crate::warehouse::parquet::parquet_files(&cmd.path);
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "{}: a directory without Parquet files",
            cmd.path.display()
        )));
    }
    let mut out = String::new();
    for f in files {
        let info = describe(&f)?;
        let _ = writeln!(out, "{}", f.display());
        let _ = writeln!(
            out,
            "  rows: {}  row groups: {}  created by: {}",
            info.rows,
            info.row_groups.len(),
            info.created_by.as_deref().unwrap_or("?")
        );
        let _ = writeln!(out, "  schema:");
        for (name, t, nullable) in &info.fields {
            let null = if *nullable { "" } else { " not null" };
            let _ = writeln!(out, "    {name}: {t}{null}");
        }
        let _ = writeln!(out, "  row groups:");
        for (i, (rows, bytes, codec)) in info.row_groups.iter().enumerate() {
            let _ = writeln!(
                out,
                "    {i}: {rows} rows, {bytes} bytes compressed ({codec})"
            );
        }
        if info.metadata.is_empty() {
            let _ = writeln!(out, "  metadata: none");
        } else {
            let _ = writeln!(out, "  metadata:");
        }
        for (k, v) in &info.metadata {
            let _ = writeln!(out, "    {k}: {}", v.replace('\n', "\n      "));
        }
    }
    crate::output::print_text(out.trim_end())
}
