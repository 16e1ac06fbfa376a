//! `cxr synth`: deterministic synthetic image archives for tests and benchmarks,
//! and the shipped sample tar made from real full-size PNGs.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::Result;
use crate::pixels::synth::{SynthOptions, sample_tar, write_tar};

/// Arguments of `cxr synth`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cxr synth images --count 1000 --edge-cases --out /tmp/synth.tar\n  cxr ingest --images /tmp/synth.tar"
)]
pub struct SynthArgs {
    /// What to generate.
    #[command(subcommand)]
    pub what: SynthWhat,
}

/// The generators.
#[derive(Debug, Subcommand)]
pub enum SynthWhat {
    /// A tar of synthetic chest-X-ray-like PNGs named after real image indices.
    Images {
        /// Number of regular images.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
        count: u64,
        /// Side of the images in pixels.
        #[arg(long, default_value_t = 224, value_parser = clap::value_parser!(u32).range(8..=8192))]
        size: u32,
        /// Also add edge cases: RGBA, 16-bit, palette, 1024-pixel, truncated, non-PNG,
        /// duplicate name, oversize header.
        #[arg(long)]
        edge_cases: bool,
        /// Seed of the generator.
        #[arg(long, default_value_t = 2017)]
        seed: u64,
        /// The tar file to write.
        #[arg(long, value_name = "FILE.tar")]
        out: PathBuf,
    },
    /// A tar of real full-size PNGs reduced as the images-224 release was: grey, short
    /// side resized to SIZE, centre-cropped.
    Sample {
        /// Folder of full-size PNGs.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Side of the output images.
        #[arg(long, default_value_t = 224, value_parser = clap::value_parser!(u32).range(8..=8192))]
        size: u32,
        /// The tar file to write.
        #[arg(long, value_name = "FILE.tar")]
        out: PathBuf,
    },
}

/// synth writes a plain tar: a name that says otherwise (`x.zip`, `x.tar.gz`) would
/// be read back as what it says and fail.
fn refuse_other_than_tar(out: &std::path::Path) -> Result<()> {
    let name = out.file_name().map(|n| n.to_string_lossy().to_lowercase());
    if name.as_deref().is_some_and(|n| n.ends_with(".tar")) {
        return Ok(());
    }
    Err(crate::error::Error::Usage(format!(
        "--out {}: synth writes a tar archive; give a name ending in .tar",
        out.display()
    )))
}

/// Runs `cxr synth`.
pub fn run(args: SynthArgs) -> Result<()> {
    match args.what {
        SynthWhat::Images {
            count,
            size,
            edge_cases,
            seed,
            out,
        } => {
            refuse_other_than_tar(&out)?;
            crate::warehouse::refuse_in_any_warehouse(&out, "--out")?;
            let count = count as usize;
            let names = crate::ingest::image_names(count + 8);
            if names.is_empty() && std::env::var_os("CXR_DATA").is_some_and(|v| !v.is_empty()) {
                return Err(crate::error::Error::Usage(format!(
                    "CXR_DATA={}: no Data_Entry_2017_v2020.csv.gz there to name the images after",
                    crate::data_dir().display()
                )));
            }
            let edge_members = write_tar(
                &out,
                &SynthOptions {
                    names,
                    count,
                    size: size as usize,
                    edge_cases,
                    seed,
                },
            )?;
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            let edge = if edge_cases {
                format!(" and {}", plural(edge_members, "edge case"))
            } else {
                String::new()
            };
            say!("wrote {} ({}{edge})", out.display(), plural(count, "image"));
        }
        SynthWhat::Sample { from, size, out } => {
            refuse_other_than_tar(&out)?;
            crate::warehouse::refuse_in_any_warehouse(&out, "--out")?;
            let n = sample_tar(&from, &out, size as usize)?;
            say!("wrote {} ({n} images, {size}×{size})", out.display());
        }
    }
    Ok(())
}
