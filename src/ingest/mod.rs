//! `cxr ingest`: the CSVs (and image archives) in, a complete warehouse out.
//!
//! Everything is read and cleaned in memory first, then written into a staging
//! directory beside the warehouse and swapped in whole, so a failed or interrupted
//! ingest leaves the previous warehouse exactly as it was.

pub mod boxes;
pub mod csv;
pub mod derived;
pub mod expert;
pub mod issues;
pub mod metadata;
mod overlap;
pub mod splits;
pub mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use polars::prelude::PlHashMap;

use crate::error::Result;
use crate::warehouse::{InputFile, Manifest, Staging, WriteLock, parquet};
use issues::Issues;

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

/// The first `count` image names of the shipped NIH metadata (none if it is absent).
pub fn image_names(count: usize) -> Vec<String> {
    let meta = crate::data_dir().join("Data_Entry_2017_v2020.csv.gz");
    let mut issues = Issues::default();
    metadata::read(&meta, &mut issues)
        .map(|m| {
            m.images
                .into_iter()
                .take(count)
                .map(|i| i.image_index)
                .collect()
        })
        .unwrap_or_default()
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
    // Refuse a wrong --warehouse before any work; write nothing for bad inputs.
    WriteLock::check(&opts.warehouse)?;
    let mut issues = Issues::default();
    // With images, the pixel pass runs while the CSVs are read (overlap.rs).
    let (read, lock, early_pixels, _cache_guard) = if opts.images.is_empty() {
        let read = read_inputs(opts, &mut issues)?;
        // Other writers wait here; from now on the warehouse is ours to change.
        (read, WriteLock::acquire(&opts.warehouse)?, None, None)
    } else {
        let (read, lock, run, guard) = overlap::read_while_measuring(opts, progress, &mut issues)?;
        (read, lock, Some(run), Some(guard))
    };
    let (meta, side) = read;
    let Side {
        lists,
        list_sources,
        bbox,
        expert,
        mut inputs,
        issues: side_issues,
    } = side;
    issues.extend(side_issues);
    crate::trace("read inputs", start);
    let t = Instant::now();
    let mut images = meta.images;
    if let Some(lists) = &lists {
        splits::assign(lists, &list_sources, &mut images, &mut issues);
    }
    let by_name: PlHashMap<&str, &metadata::Image> =
        images.iter().map(|i| (i.image_index.as_str(), i)).collect();
    let boxes = match &bbox {
        Some(t) => boxes::clean(t, &by_name, &mut issues)?,
        None => Vec::new(),
    };
    let experts = match &expert {
        Some(t) => expert::clean(t, &by_name, &mut issues)?,
        None => Vec::new(),
    };
    crate::trace("splits, boxes, expert", t);
    let pixel_run = match early_pixels {
        Some(run) => Some(run),
        None => measure_pixels(opts, &lock, progress, &mut inputs)?,
    };
    if let Some(run) = &pixel_run {
        note_unknown_images(run, &by_name, &mut issues);
    }

    let t = Instant::now();
    let staging = lock.stage()?;
    let source = csv::source_name(&opts.metadata);
    let write = |name: &str, batch: Result<RecordBatch>| -> Result<(String, u64)> {
        let w = Instant::now();
        let rows = parquet::write_table(&staging.path(&format!("{name}.parquet")), &batch?)?;
        crate::trace(&format!("  write {name}"), w);
        Ok((name.to_string(), rows))
    };
    // The big tables are built and written on threads of their own; the small ones
    // and data_issues (which the patients table adds to) follow on this one.
    let (big, patient_issues, derived) = std::thread::scope(|s| {
        let images_t = s.spawn(|| write("images", metadata::images_batch(&images)));
        let findings_t = s.spawn(|| write("findings", metadata::findings_batch(&images)));
        let derived_t = s.spawn(|| derived::write(&images, &staging));
        let mut patient_issues = Issues::default();
        let patients = write(
            "patients",
            metadata::patients_batch(&images, &source, &mut patient_issues),
        );
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<(String, u64)>>| {
            h.join().expect("table writer does not panic")
        };
        let derived = derived_t
            .join()
            .expect("derived tables writer does not panic");
        (
            vec![join(images_t), join(findings_t), patients],
            patient_issues,
            derived,
        )
    });
    issues.extend(patient_issues);
    let mut tables = big.into_iter().collect::<Result<Vec<_>>>()?;
    tables.extend(derived?);
    tables.push(write("bboxes", boxes::boxes_batch(&boxes))?);
    tables.push(write("expert_labels", expert::expert_batch(&experts))?);
    tables.push(write("data_issues", issues.to_batch())?);
    let empty = crate::pixels::run::PixelRun::default();
    tables.extend(write_pixel_tables(
        pixel_run.as_ref().unwrap_or(&empty),
        &staging,
    )?);
    let mut manifest = Manifest::new(meta.revision.name());
    manifest.inputs = inputs;
    manifest.tables = tables.iter().cloned().collect::<BTreeMap<_, _>>();
    crate::trace("write tables", t);
    staging.commit(manifest)?;
    if pixel_run.is_some() {
        let _ = std::fs::remove_dir_all(pixel_cache(opts, &lock));
    }
    Ok(IngestSummary {
        tables,
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

/// Reads the metadata and, on another thread meanwhile, the side inputs (which do
/// not need the metadata until they are matched against it).
fn read_inputs(opts: &IngestOptions, issues: &mut Issues) -> Result<(metadata::Metadata, Side)> {
    let (meta, side) = std::thread::scope(|s| {
        let side = s.spawn(|| read_side(opts));
        let meta = metadata::read(&opts.metadata, issues);
        (meta, side.join().expect("side input reader does not panic"))
    });
    Ok((meta?, side?))
}

/// The resume cache of a pixel run: inside the warehouse, keyed by the inputs.
fn pixel_cache(opts: &IngestOptions, lock: &WriteLock) -> PathBuf {
    lock.scratch(&format!(
        "pixels-{}",
        crate::pixels::run::cache_key(&opts.images)
    ))
}

/// Measures the image inputs, if any, recording each as an input of the ingest.
fn measure_pixels(
    opts: &IngestOptions,
    lock: &WriteLock,
    progress: &dyn crate::pixels::run::Progress,
    inputs: &mut Vec<InputFile>,
) -> Result<Option<crate::pixels::run::PixelRun>> {
    if opts.images.is_empty() {
        return Ok(None);
    }
    let run = crate::pixels::run::measure(&opts.images, &pixel_cache(opts, lock), progress)?;
    inputs.extend(run.inputs.iter().cloned());
    Ok(Some(run))
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
/// `pixel_errors` into the new version.
fn write_pixel_tables(
    run: &crate::pixels::run::PixelRun,
    staging: &Staging,
) -> Result<Vec<(String, u64)>> {
    use crate::pixels::run::{errors_batch, errors_schema, stats_schema};
    let opts = parquet::WriteOptions::default();
    let mut stats =
        parquet::ParquetSink::create(&staging.path("pixel_stats.parquet"), &stats_schema(), &opts)?;
    for chunk in &run.chunks {
        for b in parquet::read(chunk)? {
            stats.write(&b)?;
        }
    }
    let stats_rows = stats.finish()?;
    let error_rows = parquet::write(
        &staging.path("pixel_errors.parquet"),
        &errors_schema(),
        &[errors_batch(&run.errors)?],
        &opts,
    )?;
    Ok(vec![
        ("pixel_stats".to_string(), stats_rows),
        ("pixel_errors".to_string(), error_rows),
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
