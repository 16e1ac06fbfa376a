//! `cxr ingest`: the CSVs (and image archives) in, a complete warehouse out.
//!
//! Everything is read and cleaned in memory first, then written into a staging
//! directory beside the warehouse and swapped in whole, so a failed or interrupted
//! ingest leaves the previous warehouse exactly as it was.

pub mod boxes;
pub mod csv;
pub mod expert;
pub mod issues;
pub mod metadata;
pub mod splits;
pub mod warehouse;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use polars::prelude::{DataFrame, PlHashMap, PolarsResult};

use crate::error::Result;
use issues::Issues;
use warehouse::{InputFile, Manifest, SCHEMA_VERSION, Staging, write_parquet};

/// What to ingest and where to put it.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// `Data_Entry_2017*.csv[.gz]`.
    pub metadata: PathBuf,
    /// `BBox_List_2017.csv`, if any.
    pub bbox: Option<PathBuf>,
    /// Google's expert labels, if any.
    pub expert: Option<PathBuf>,
    /// The official train_val and test lists, if any.
    pub splits: Option<[PathBuf; 2]>,
    /// Image inputs (tar, tar.gz or folders of PNGs) for `pixel_stats`.
    pub images: Vec<PathBuf>,
    /// The warehouse directory to (re)create.
    pub warehouse: PathBuf,
}

/// What an ingest produced, for the closing summary.
#[derive(Debug, Clone)]
pub struct IngestSummary {
    /// (table, rows), in write order.
    pub tables: Vec<(String, u64)>,
    /// Rows in `data_issues`.
    pub issues: u64,
    /// Which metadata release was read.
    pub revision: String,
    /// The pixel run, when images were given.
    pub pixels: Option<PixelSummary>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The closing summary of the pixel statistics.
#[derive(Debug, Clone)]
pub struct PixelSummary {
    /// Images measured.
    pub measured: u64,
    /// Members in `pixel_errors`.
    pub errors: u64,
    /// Members skipped as not PNG.
    pub skipped: u64,
    /// Members taken over from an interrupted earlier run.
    pub resumed: u64,
    /// Seconds spent on pixels.
    pub seconds: f64,
}

/// Runs a whole ingest without progress output.
pub fn run(opts: &IngestOptions) -> Result<IngestSummary> {
    run_with_progress(opts, &crate::pixels::run::Quiet)
}

/// Runs a whole ingest: read, clean, measure pixels, write, commit.
pub fn run_with_progress(
    opts: &IngestOptions,
    progress: &dyn crate::pixels::run::Progress,
) -> Result<IngestSummary> {
    let start = Instant::now();
    check_inputs(opts)?;
    let mut issues = Issues::default();
    // The side inputs do not need the metadata until they are matched against it:
    // parse them on another thread while the metadata is read and cleaned.
    let (meta, side) = std::thread::scope(|s| {
        let side = s.spawn(|| read_side(opts));
        let meta = metadata::read(&opts.metadata, &mut issues);
        (meta, side.join().expect("side input reader does not panic"))
    });
    let (meta, mut side) = (meta?, side?);
    crate::trace("read inputs", start);
    let t = Instant::now();
    issues.extend(std::mem::take(&mut side.issues));
    let mut inputs = side.inputs;
    let mut images = meta.images;
    if let Some(lists) = &side.lists {
        splits::assign(lists, &side.list_sources, &mut images, &mut issues);
    }
    let by_name: PlHashMap<&str, &metadata::Image> =
        images.iter().map(|i| (i.image_index.as_str(), i)).collect();
    let boxes = match &side.bbox {
        Some(t) => boxes::clean(t, &by_name, &mut issues)?,
        None => Vec::new(),
    };
    let experts = match &side.expert {
        Some(t) => expert::clean(t, &by_name, &mut issues)?,
        None => Vec::new(),
    };
    crate::trace("splits, boxes, expert", t);
    let cache = warehouse::sibling(
        &opts.warehouse,
        &format!("pixels-{}", crate::pixels::run::cache_key(&opts.images)),
    );
    let pixel_run = if opts.images.is_empty() {
        None
    } else {
        for p in &opts.images {
            inputs.push(InputFile::describe_quick("images", p)?);
        }
        let run = crate::pixels::run::measure(&opts.images, &cache, progress)?;
        note_unknown_images(&run, &by_name, &mut issues);
        Some(run)
    };

    let t = Instant::now();
    let staging = Staging::new(&opts.warehouse)?;
    let source = csv::source_name(&opts.metadata);
    // Each big table is built and written on its own thread; the small ones and
    // data_issues (which the patients table adds to) follow on this one.
    let build_and_write = |name: &str, df: PolarsResult<DataFrame>| -> Result<(String, u64)> {
        let mut df = df?;
        let w = Instant::now();
        write_parquet(&mut df, &staging.path(&format!("{name}.parquet")))?;
        crate::trace(&format!("  write {name}"), w);
        Ok((name.to_string(), df.height() as u64))
    };
    let (big, patient_issues) = std::thread::scope(|s| {
        let images_t = s.spawn(|| build_and_write("images", metadata::images_frame(&images)));
        let findings_t = s.spawn(|| build_and_write("findings", metadata::findings_frame(&images)));
        let mut patient_issues = Issues::default();
        let patients = build_and_write(
            "patients",
            metadata::patients_frame(&images, &source, &mut patient_issues),
        );
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<(String, u64)>>| {
            h.join().expect("table writer does not panic")
        };
        (
            vec![join(images_t), join(findings_t), patients],
            patient_issues,
        )
    });
    issues.extend(patient_issues);
    let mut tables = big.into_iter().collect::<Result<Vec<_>>>()?;
    tables.push(build_and_write("bboxes", boxes::frame(&boxes))?);
    tables.push(build_and_write("expert_labels", expert::frame(&experts))?);
    tables.push(build_and_write("data_issues", issues.to_frame())?);
    let empty = crate::pixels::run::PixelRun::default();
    let run = pixel_run.as_ref().unwrap_or(&empty);
    tables.extend(write_pixel_tables(run, &staging)?);
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        cxr_version: env!("CARGO_PKG_VERSION").to_string(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        metadata_revision: meta.revision.name().to_string(),
        inputs,
        tables: tables.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    let manifest_path = staging.path(warehouse::MANIFEST);
    std::fs::write(&manifest_path, json + "\n").map_err(|e| {
        crate::error::Error::io(format!("{}: cannot write", manifest_path.display()), e)
    })?;
    crate::trace("write tables", t);
    staging.commit()?;
    if pixel_run.is_some() {
        let _ = std::fs::remove_dir_all(&cache);
    }
    Ok(IngestSummary {
        tables,
        issues: issues.len() as u64,
        revision: meta.revision.name().to_string(),
        pixels: pixel_run.map(|r| PixelSummary {
            measured: r.measured,
            errors: r.errors.len() as u64,
            skipped: r.skipped,
            resumed: r.resumed,
            seconds: r.seconds,
        }),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The inputs read beside the metadata: parsed, not yet matched against it.
struct Side {
    lists: Option<[Vec<(u64, String)>; 2]>,
    list_sources: [String; 2],
    bbox: Option<csv::CsvTable>,
    expert: Option<csv::CsvTable>,
    inputs: Vec<InputFile>,
    issues: Issues,
}

/// Describes every input file (size, SHA-256) and parses the box list, the expert
/// labels and the split lists.
fn read_side(opts: &IngestOptions) -> Result<Side> {
    let mut side = Side {
        lists: None,
        list_sources: Default::default(),
        bbox: None,
        expert: None,
        inputs: vec![InputFile::describe("metadata", &opts.metadata)?],
        issues: Issues::default(),
    };
    if let Some([train_val, test]) = &opts.splits {
        side.inputs
            .push(InputFile::describe("split_train_val", train_val)?);
        side.inputs.push(InputFile::describe("split_test", test)?);
        side.lists = Some([csv::read_list(train_val)?, csv::read_list(test)?]);
        side.list_sources = [csv::source_name(train_val), csv::source_name(test)];
    }
    if let Some(p) = &opts.bbox {
        side.inputs.push(InputFile::describe("bbox", p)?);
        side.bbox = Some(csv::CsvTable::read(p, &mut side.issues)?);
    }
    if let Some(p) = &opts.expert {
        side.inputs.push(InputFile::describe("expert", p)?);
        side.expert = Some(csv::CsvTable::read(p, &mut side.issues)?);
    }
    Ok(side)
}

/// A measured image whose name has no `images` row is kept, with a `data_issues` row.
fn note_unknown_images(
    run: &crate::pixels::run::PixelRun,
    known: &PlHashMap<&str, &metadata::Image>,
    issues: &mut Issues,
) {
    for (source, member, name) in &run.names {
        if !known.contains_key(name.as_str()) {
            issues.push(
                &csv::source_name(std::path::Path::new(source)),
                None,
                Some(member),
                Some(name),
                "image not in the metadata; measured anyway",
            );
        }
    }
}

/// Writes `pixel_stats` (the committed chunks, merged in member order) and
/// `pixel_errors` into the staging directory.
fn write_pixel_tables(
    run: &crate::pixels::run::PixelRun,
    staging: &Staging,
) -> Result<Vec<(String, u64)>> {
    use crate::pixels::run::{
        errors_batch, errors_schema, read_batches, stats_schema, write_batches,
    };
    let mut batches = Vec::new();
    for chunk in &run.chunks {
        batches.extend(read_batches(chunk)?);
    }
    let stats_rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    write_batches(
        &staging.path("pixel_stats.parquet"),
        stats_schema(),
        &batches,
    )?;
    write_batches(
        &staging.path("pixel_errors.parquet"),
        errors_schema(),
        &[errors_batch(&run.errors)?],
    )?;
    Ok(vec![
        ("pixel_stats".to_string(), stats_rows),
        ("pixel_errors".to_string(), run.errors.len() as u64),
    ])
}

/// Fails before anything is read if an input file does not exist.
fn check_inputs(opts: &IngestOptions) -> Result<()> {
    csv::check_exists(&opts.metadata)?;
    for p in opts.bbox.iter().chain(opts.expert.iter()) {
        csv::check_exists(p)?;
    }
    for p in opts.splits.iter().flatten() {
        csv::check_exists(p)?;
    }
    crate::pixels::source::check(&opts.images)
        .map_err(|u| crate::error::Error::input(&u.path, u.reason))
}
