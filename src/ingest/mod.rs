//! `cxr ingest`: the CSVs (and image archives) in, a complete warehouse out.
//!
//! Everything is read and cleaned in memory first, then written into a staging
//! directory beside the warehouse and swapped in whole, so a failed or interrupted
//! ingest leaves the previous warehouse exactly as it was.

pub use crate::input::{csv, issues, table};

pub mod derived;
mod overlap;

pub mod across;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use polars::prelude::PlHashMap;

use crate::datasets::nih::{self, Release, metadata};
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
    /// Image inputs (tar, tar.gz, zip or folders), each with its dataset, for
    /// `pixel_stats`.
    pub images: Vec<crate::pixels::source::ImageInput>,
    /// The other NIH label release (the 2017 file beside the 2020 one, or the
    /// reverse), a second label source in `dataset_labels`.
    pub other_release: Option<PathBuf>,
    /// Other datasets for the cross-dataset tables.
    pub datasets: Vec<crate::datasets::DatasetSpec>,
    /// A label map replacing the shipped one.
    pub label_map: Option<PathBuf>,
    /// The warehouse directory to (re)create.
    pub warehouse: PathBuf,
}

impl IngestOptions {
    /// The NIH files among the inputs.
    fn nih_files(&self) -> nih::Files {
        nih::Files {
            metadata: self.metadata.clone(),
            splits: self.splits.clone(),
            bbox: self.bbox.clone(),
            expert: self.expert.clone(),
        }
    }

    /// Only the NIH metadata at `metadata`, into `warehouse`: no side inputs.
    pub fn metadata_only(metadata: PathBuf, warehouse: PathBuf) -> IngestOptions {
        IngestOptions {
            metadata,
            bbox: None,
            expert: None,
            splits: None,
            images: Vec::new(),
            other_release: None,
            datasets: Vec::new(),
            label_map: None,
            warehouse,
        }
    }
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
    /// Images among `measured` that the interrupted earlier run measured.
    pub resumed_images: u64,
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
    // Refuse a wrong --warehouse before any work; write nothing for bad inputs. One
    // inside another would be removed with the outer one's old version.
    crate::warehouse::refuse_in_any_warehouse(&opts.warehouse, "--warehouse")?;
    WriteLock::check(&opts.warehouse)?;
    let mut issues = Issues::default();
    // With images, the other datasets are read first (a wrong file is refused before
    // any pixel work), then the pixel pass runs while the CSVs are read and their
    // tables written (overlap.rs). Without, the other datasets and NIH are read side
    // by side.
    let (lock, others, read) = if opts.images.is_empty() {
        let (others, read) = read_all_side_by_side(opts, &mut issues)?;
        // Other writers wait here; from now on the warehouse is ours to change.
        (WriteLock::acquire(&opts.warehouse)?, others, Some(read))
    } else {
        let others = read_datasets(opts, &mut issues)?;
        (WriteLock::acquire(&opts.warehouse)?, others, None)
    };
    let staging = lock.stage()?;
    let (written, pixel_run, _cache_guard) = match read {
        Some(read) => {
            crate::trace("read inputs", start);
            let written = write_metadata(opts, &staging, others, read, &mut issues, true)?;
            (written, None, None)
        }
        None => {
            let (written, run, guard) = overlap::write_while_measuring(
                opts,
                &lock,
                &staging,
                others,
                progress,
                &mut issues,
            )?;
            (written, Some(run), Some(guard))
        }
    };
    let Written {
        mut tables,
        inputs,
        images,
        revision,
    } = written;
    let t = Instant::now();
    if let Some(run) = &pixel_run {
        note_unknown_images(run, &images, &mut issues);
        note_dicom_disagreements(run, &images, &mut issues)?;
    }
    drop(images);
    tables.push(write_table(&staging, "data_issues", issues.to_batch())?);
    let empty = crate::pixels::run::PixelRun::default();
    tables.extend(write_pixel_tables(
        pixel_run.as_ref().unwrap_or(&empty),
        &staging,
    )?);
    let mut manifest = Manifest::new(revision.name());
    manifest.inputs = inputs;
    manifest.tables = tables.iter().cloned().collect::<BTreeMap<_, _>>();
    crate::trace("write issues and pixel tables", t);
    staging.commit(manifest)?;
    if pixel_run.is_some() {
        let _ = std::fs::remove_dir_all(pixel_cache(opts, &lock));
    }
    Ok(IngestSummary {
        tables,
        revision: revision.name().to_string(),
        pixels: pixel_run.map(|r| PixelSummary {
            measured: r.measured,
            errors: r.errors.len() as u64,
            skipped: r.skipped,
            resumed: r.resumed,
            resumed_images: r.resumed_images,
            seconds: r.seconds,
        }),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A piece of work on a thread of its own, or done at once: while the pixel pass
/// keeps every core busy, the tables are written one after another, which holds one
/// table's batches in memory at a time instead of all of them.
enum Task<'s, T> {
    Running(std::thread::ScopedJoinHandle<'s, T>),
    Done(T),
}

impl<'s, T: Send + 's> Task<'s, T> {
    fn start<'e>(
        s: &'s std::thread::Scope<'s, 'e>,
        parallel: bool,
        work: impl FnOnce() -> T + Send + 's,
    ) -> Self {
        if parallel {
            Task::Running(s.spawn(work))
        } else {
            Task::Done(work())
        }
    }

    fn join(self) -> T {
        match self {
            Task::Running(h) => h.join().expect("a table writer does not panic"),
            Task::Done(v) => v,
        }
    }
}

/// What [`write_metadata`] wrote, and what the rest of the ingest needs from it.
struct Written {
    /// (table, rows) of every table written.
    tables: Vec<(String, u64)>,
    /// Every input file read.
    inputs: Vec<InputFile>,
    /// The images of the datasets whose images are measured, to match them against.
    images: KnownImages,
    revision: metadata::Revision,
}

/// One table from one batch into the new version.
fn write_table(staging: &Staging, name: &str, batch: Result<RecordBatch>) -> Result<(String, u64)> {
    let w = Instant::now();
    let rows = parquet::write_table(&staging.path(&format!("{name}.parquet")), &batch?)?;
    crate::trace(&format!("  write {name}"), w);
    Ok((name.to_string(), rows))
}

/// Matches the side inputs against the metadata and writes every table but
/// `data_issues` and the pixel tables (which wait for the pixel pass).
fn write_metadata(
    opts: &IngestOptions,
    staging: &Staging,
    others: Vec<(crate::datasets::DatasetRows, crate::datasets::DatasetInfo)>,
    release: Release,
    issues: &mut Issues,
    parallel: bool,
) -> Result<Written> {
    let t = Instant::now();
    let write = |name: &str, batch: Result<RecordBatch>| write_table(staging, name, batch);
    let nih_source = release.revision.source();
    if let Some(other) = &opts.other_release
        && others
            .iter()
            .any(|(_, info)| info.dataset == "nih" && info.label_sources == [nih_source])
    {
        return Err(crate::error::Error::input(
            other,
            format!(
                "the same NIH release ({}) as the metadata; --other-release takes the other one",
                release.revision.name()
            ),
        ));
    }
    // The big tables are built and written on threads of their own; the small ones
    // follow on this one.
    let (big, patient_issues, derived, cross) = std::thread::scope(|s| {
        let images = &release.images;
        let images_t = Task::start(s, parallel, || {
            write("images", metadata::images_batch(images))
        });
        let findings_t = Task::start(s, parallel, || {
            write("findings", metadata::findings_batch(images))
        });
        let derived_t = Task::start(s, parallel, || derived::write(images, staging));
        let release = &release;
        let write = &write;
        let cross_t = Task::start(
            s,
            parallel,
            move || -> Result<(Vec<(String, u64)>, Cross)> {
                let t = Instant::now();
                let mut cross = cross_dataset(opts, release, others)?;
                crate::trace("  cross-dataset rows", t);
                let parts = std::mem::take(&mut cross.parts);
                let measured: Vec<&str> = opts.images.iter().map(|i| i.dataset).collect();
                let mut tables =
                    write_cross_dataset(staging, parts, nih_source, &measured, &mut cross.images)?;
                tables.push(write("datasets", across::datasets_batch(&cross.datasets))?);
                Ok((tables, cross))
            },
        );
        let mut patient_issues = Issues::default();
        let patients = write(
            "patients",
            metadata::patients_batch(images, &release.metadata_name, &mut patient_issues),
        );
        let small = [
            write("bboxes", nih::boxes::boxes_batch(&release.boxes)),
            write("expert_labels", nih::expert::expert_batch(&release.experts)),
        ];
        let derived = derived_t.join();
        let cross = cross_t.join();
        let mut big = vec![images_t.join(), findings_t.join(), patients];
        big.extend(small);
        (big, patient_issues, derived, cross)
    });
    issues.extend(patient_issues);
    let mut tables = big.into_iter().collect::<Result<Vec<_>>>()?;
    tables.extend(derived?);
    let (cross_tables, cross) = cross?;
    tables.extend(cross_tables);
    let Release {
        images,
        revision,
        mut inputs,
        ..
    } = release;
    inputs.extend(cross.inputs);
    crate::trace("write tables", t);
    // A million small strings take a while to free; the caller need not wait for it.
    std::thread::spawn(move || drop(images));
    Ok(Written {
        tables,
        inputs,
        images: cross.images,
        revision,
    })
}

/// Rows per batch of the cross-dataset tables: a few megabytes of Arrow arrays.
const SLICE: usize = 65_536;

/// Writes `dataset_images`, `dataset_labels`, `finding_states`, `dataset_boxes`, `reports` and
/// `studies`, one
/// part (dataset) after another and in slices of [`SLICE`] rows, freeing each part's
/// rows once written: the rows of the parts still to write and one slice's batch are
/// all that is in memory.
fn write_cross_dataset(
    staging: &Staging,
    parts: Vec<crate::datasets::DatasetRows>,
    nih_source: &str,
    measured: &[&str],
    known: &mut KnownImages,
) -> Result<Vec<(String, u64)>> {
    use crate::datasets::DatasetRows;
    let opts = parquet::WriteOptions {
        no_dictionary: vec!["image_id", "patient_id", "study_id", "path"],
        // One patient's rows (a timeline) are a few pages, not a fifth of the file.
        page_rows: Some(4096),
        ..Default::default()
    };
    let sink = |name: &str, empty: Result<RecordBatch>| -> Result<(String, parquet::ParquetSink)> {
        let path = staging.path(&format!("{name}.parquet"));
        Ok((
            name.to_string(),
            parquet::ParquetSink::create(&path, &empty?.schema(), &opts)?,
        ))
    };
    let no_states = PlHashMap::default();
    let mut sinks = [
        sink("dataset_images", across::images_batch(&[], &no_states))?,
        sink("dataset_labels", across::labels_batch(&[]))?,
        sink("finding_states", across::states_batch(&[]))?,
        sink("dataset_boxes", across::boxes_batch(&[]))?,
        sink("reports", across::reports_batch(&[]))?,
        sink("studies", across::studies_batch(&[], &no_states))?,
    ];
    let w = Instant::now();
    for part in parts {
        let DatasetRows {
            images,
            labels,
            boxes,
            reports,
        } = part;
        if let Some(first) = images.first()
            && measured.contains(&first.dataset)
        {
            let ids = known.entry(first.dataset).or_default();
            ids.extend(images.iter().map(|i| (i.image_id.clone(), i.sex)));
        }
        let sources = across::source_states(&labels);
        let states = across::default_states(&sources, nih_source);
        for rows in images.chunks(SLICE) {
            sinks[0].1.write(&across::images_batch(rows, &states)?)?;
        }
        for rows in labels.chunks(SLICE) {
            sinks[1].1.write(&across::labels_batch(rows)?)?;
        }
        for rows in sources.0.chunks(SLICE) {
            sinks[2].1.write(&across::states_batch(rows)?)?;
        }
        for rows in across::reader_votes(&sources).chunks(SLICE) {
            sinks[2].1.write(&across::states_batch(rows)?)?;
        }
        for rows in boxes.chunks(SLICE) {
            sinks[3].1.write(&across::boxes_batch(rows)?)?;
        }
        for rows in reports.chunks(SLICE) {
            sinks[4].1.write(&across::reports_batch(rows)?)?;
        }
        sinks[5]
            .1
            .write(&across::studies_batch(&images, &states)?)?;
    }
    crate::trace(
        "  write dataset_images, dataset_labels, finding_states, dataset_boxes, reports, studies",
        w,
    );
    sinks
        .into_iter()
        .map(|(name, sink)| Ok((name, sink.finish()?)))
        .collect()
}

/// Every dataset's rows in the cross-dataset tables, and the `datasets` rows.
struct Cross {
    /// NIH's rows first, then each other dataset's (and the other NIH release's labels).
    parts: Vec<crate::datasets::DatasetRows>,
    datasets: Vec<(crate::datasets::DatasetInfo, [Option<i64>; 3])>,
    inputs: Vec<InputFile>,
    /// Filled as the parts are written.
    images: KnownImages,
}

/// Per dataset whose images are measured, its image ids and each image's sex.
type KnownImages = std::collections::HashMap<&'static str, PlHashMap<String, Option<&'static str>>>;

/// The other datasets and the NIH inputs, read on threads side by side; issues in
/// the order of a sequential read (the other datasets' first), and a dataset's error
/// before NIH's.
#[allow(clippy::type_complexity)]
fn read_all_side_by_side(
    opts: &IngestOptions,
    issues: &mut Issues,
) -> Result<(
    Vec<(crate::datasets::DatasetRows, crate::datasets::DatasetInfo)>,
    Release,
)> {
    let (others, nih) = std::thread::scope(|s| {
        let nih = s.spawn(|| {
            let mut own = Issues::default();
            nih::read(&opts.nih_files(), &mut own).map(|r| (r, own))
        });
        let mut own = Issues::default();
        let others = read_datasets(opts, &mut own).map(|o| (o, own));
        (others, nih.join().expect("the NIH reader does not panic"))
    });
    let (others, other_issues) = others?;
    let (read, nih_issues) = nih?;
    issues.extend(other_issues);
    issues.extend(nih_issues);
    Ok((others, read))
}

/// The other datasets, each read on a thread of its own, with its `data_issues`.
fn read_datasets(
    opts: &IngestOptions,
    issues: &mut Issues,
) -> Result<Vec<(crate::datasets::DatasetRows, crate::datasets::DatasetInfo)>> {
    use crate::datasets::{LabelMap, read};
    let map = match &opts.label_map {
        Some(p) => LabelMap::from_file(p)?,
        None => LabelMap::default(),
    };
    // The other NIH release is read beside the datasets: its labels only.
    let mut jobs: Vec<Option<&crate::datasets::DatasetSpec>> =
        opts.datasets.iter().map(Some).collect();
    if opts.other_release.is_some() {
        jobs.push(None);
    }
    let read_one = |job: &Option<&crate::datasets::DatasetSpec>| -> Result<(
        crate::datasets::DatasetRows,
        crate::datasets::DatasetInfo,
        Issues,
    )> {
        let mut own = Issues::default();
        let (rows, info) = match (job, &opts.other_release) {
            (Some(spec), _) => read(spec, &map, &mut own)?,
            (None, Some(path)) => nih::read_other_release(path, &mut own)?,
            (None, None) => unreachable!("a job without a spec is the other release"),
        };
        Ok((rows, info, own))
    };
    let results = on_each_core(&jobs, read_one);
    let mut out = Vec::new();
    for r in results {
        let (rows, info, own) = r?;
        issues.extend(own);
        out.push((rows, info));
    }
    Ok(out)
}

/// `work` on each item, on as many threads as there are cores (a reader holds its
/// whole file while it reads: eight at once on two cores were no faster and held
/// eight files); the results in the items' order.
fn on_each_core<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let done: std::sync::Mutex<Vec<(usize, R)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..cores.min(items.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = work(item);
                    done.lock().expect("no reader panics").push((i, r));
                }
            });
        }
    });
    let mut done = done.into_inner().expect("no reader panics");
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// NIH (images, labels of both releases, Google's labels, boxes) and every other
/// dataset, as rows of the cross-dataset tables.
fn cross_dataset(
    opts: &IngestOptions,
    release: &Release,
    others: Vec<(crate::datasets::DatasetRows, crate::datasets::DatasetInfo)>,
) -> Result<Cross> {
    let (rows, mut nih_info) = release.rows();
    nih_info.label_sources = sources_of(&rows.labels);
    let nih_counts = counts(&rows.images);
    let mut datasets = Vec::new();
    let mut inputs = Vec::new();
    // Each dataset's rows stay a part of their own, written as batches of one file:
    // merging them would copy a million rows for nothing.
    let mut parts = vec![rows];
    for (other, mut info) in others {
        info.label_sources = sources_of(&other.labels);
        if info.dataset == "nih" {
            // The other NIH release: labels only, over the same images.
            nih_info.source_files.extend(info.source_files);
            nih_info.label_sources.extend(info.label_sources);
        } else {
            for spec in opts.datasets.iter().filter(|s| s.name == info.dataset) {
                for p in &spec.paths {
                    inputs.push(InputFile::describe(info.dataset, p)?);
                }
            }
            datasets.push((info, counts(&other.images)));
        }
        parts.push(other);
    }
    nih_info.label_sources.sort();
    nih_info.label_sources.dedup();
    datasets.insert(0, (nih_info, nih_counts));
    if let Some(p) = &opts.other_release {
        inputs.push(InputFile::describe("metadata_other_release", p)?);
    }
    inputs.push(match &opts.label_map {
        Some(p) => InputFile::describe("label_map", p)?,
        None => shipped_map(),
    });
    Ok(Cross {
        parts,
        datasets,
        inputs,
        images: KnownImages::default(),
    })
}

/// The shipped label map as an input of the ingest (its content hashed).
fn shipped_map() -> InputFile {
    let text = crate::datasets::label_map::DEFAULT_MAP;
    InputFile {
        role: "label_map".into(),
        path: "(shipped) src/datasets/label_map.csv".into(),
        size: text.len() as u64,
        sha256: crate::warehouse::sha256_hex(text.as_bytes()),
    }
}

/// (images, distinct patients, distinct studies) of one dataset's images; a count of
/// ids the release does not give (no image has one: VinDr, RSNA and SIIM patients) is
/// unknown, not 0.
fn counts(images: &[crate::datasets::ImageRow]) -> [Option<i64>; 3] {
    let distinct = |f: &dyn Fn(&crate::datasets::ImageRow) -> Option<&str>| {
        let n = images
            .iter()
            .filter_map(f)
            .collect::<polars::prelude::PlHashSet<_>>()
            .len() as i64;
        (n > 0 || images.is_empty()).then_some(n)
    };
    [
        Some(images.len() as i64),
        distinct(&|i| i.patient_id.as_deref()),
        distinct(&|i| i.study_id.as_deref()),
    ]
}

/// The label sources of one dataset's labels, with the votes of its readers (see
/// [`across::reader_votes`]), sorted. (A reader's labels come in runs of one source:
/// comparing with the last one seen skips most of them.)
fn sources_of(labels: &[crate::datasets::LabelRow]) -> Vec<String> {
    let mut set: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut last = "";
    for l in labels {
        if *l.source != *last {
            last = &l.source;
            set.insert(last);
            let readers = crate::datasets::dataset(l.dataset).and_then(|d| d.readers);
            if let Some(r) = readers.filter(|r| last.starts_with(r.source_prefix)) {
                set.extend(r.votes);
            }
        }
    }
    set.into_iter().map(str::to_string).collect()
}

/// The resume cache of a pixel run: inside the warehouse, keyed by the inputs.
fn pixel_cache(opts: &IngestOptions, lock: &WriteLock) -> PathBuf {
    lock.scratch(&format!(
        "pixels-{}",
        crate::pixels::run::cache_key(&opts.images)
    ))
}

/// A measured image that is not among its dataset's images is kept, with a
/// `data_issues` row.
fn note_unknown_images(
    run: &crate::pixels::run::PixelRun,
    known: &KnownImages,
    issues: &mut Issues,
) {
    for image in &run.names {
        let listed = known
            .get(image.dataset.as_str())
            .is_some_and(|ids| ids.contains_key(&image.image_id));
        if !listed {
            let what = if image.dataset == "nih" {
                "the metadata".to_string()
            } else {
                format!("{}'s images", image.dataset)
            };
            issues.push(
                &csv::source_name(std::path::Path::new(&image.archive)),
                None,
                Some(&image.member),
                Some(&image.image_id),
                format!("image not in {what}; measured anyway"),
            );
        }
    }
}

/// A DICOM's PatientSex that differs from the sex its dataset's tables give is a
/// `data_issues` row (the tables keep the dataset's value).
fn note_dicom_disagreements(
    run: &crate::pixels::run::PixelRun,
    known: &KnownImages,
    issues: &mut Issues,
) -> Result<()> {
    use datafusion::arrow::array::{Array, StringArray};
    for chunk in run.dicom_chunks() {
        for batch in parquet::read(&chunk)? {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .cloned()
                    .expect("dicom_headers has its text columns")
            };
            let [dataset, id, source, sex] =
                ["dataset", "image_id", "source", "patient_sex"].map(column);
            for i in 0..batch.num_rows() {
                let stated = known
                    .get(dataset.value(i))
                    .and_then(|ids| ids.get(id.value(i)).copied().flatten());
                let dicom = (!sex.is_null(i)).then(|| sex.value(i).to_uppercase());
                let (Some(stated), Some(dicom)) = (stated, dicom) else {
                    continue;
                };
                if matches!(dicom.as_str(), "M" | "F") && dicom != stated {
                    let (archive, member) = source.value(i).rsplit_once(':').unwrap_or_default();
                    issues.push(
                        &csv::source_name(std::path::Path::new(archive)),
                        None,
                        Some(member),
                        Some(&dicom),
                        format!(
                            "DICOM PatientSex '{dicom}' differs from {}'s sex '{stated}' for image '{}'; the dataset's value kept",
                            dataset.value(i),
                            id.value(i)
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Writes `pixel_stats` (the committed chunks, merged in member order),
/// `dicom_headers` and `pixel_errors` into the new version.
fn write_pixel_tables(
    run: &crate::pixels::run::PixelRun,
    staging: &Staging,
) -> Result<Vec<(String, u64)>> {
    use crate::pixels::run::{errors_batch, errors_schema, stats_schema};
    let opts = parquet::WriteOptions::unique_ids();
    let mut tables = Vec::new();
    let merged = [
        ("pixel_stats", stats_schema(), run.chunks.clone()),
        (
            "dicom_headers",
            crate::pixels::dicom::headers_schema(),
            run.dicom_chunks(),
        ),
    ];
    for (name, schema, chunks) in merged {
        let path = staging.path(&format!("{name}.parquet"));
        let mut sink = parquet::ParquetSink::create(&path, &schema, &opts)?;
        for chunk in &chunks {
            for b in parquet::read(chunk)? {
                sink.write(&b)?;
            }
        }
        tables.push((name.to_string(), sink.finish()?));
    }
    let error_rows = parquet::write(
        &staging.path("pixel_errors.parquet"),
        &errors_schema(),
        &[errors_batch(&run.errors)?],
        &opts,
    )?;
    tables.push(("pixel_errors".to_string(), error_rows));
    Ok(tables)
}

/// Fails before anything is read if an input file does not exist.
fn check_inputs(opts: &IngestOptions) -> Result<()> {
    csv::check_exists(&opts.metadata)?;
    for (i, spec) in opts.datasets.iter().enumerate() {
        if spec.name == "nih" {
            return Err(crate::error::Error::Usage(
                "NIH is read from --metadata (with --bbox, --expert and --splits), not --dataset"
                    .into(),
            ));
        }
        if !crate::datasets::readable().contains(&spec.name.as_str()) {
            return Err(crate::error::Error::Usage(format!(
                "unknown dataset '{}'; known datasets: {}",
                spec.name,
                crate::datasets::readable().join(", ")
            )));
        }
        if opts.datasets[..i].iter().any(|s| s.name == spec.name) {
            return Err(crate::error::Error::Usage(format!(
                "--dataset {} is given twice; give each dataset once (several files: {}=A,B)",
                spec.name, spec.name
            )));
        }
    }
    let files = opts
        .bbox
        .iter()
        .chain(&opts.expert)
        .chain(&opts.other_release)
        .chain(&opts.label_map)
        .chain(opts.datasets.iter().flat_map(|d| &d.paths));
    for p in files {
        csv::check_exists(p)?;
    }
    for p in opts.splits.iter().flatten() {
        csv::check_exists(p)?;
    }
    for input in &opts.images {
        let read = input.dataset == "nih" || opts.datasets.iter().any(|d| d.name == input.dataset);
        if !read {
            return Err(crate::error::Error::Usage(format!(
                "--images {}={} needs --dataset {}=... (its images are matched to the dataset's rows)",
                input.dataset,
                input.path.display(),
                input.dataset
            )));
        }
    }
    crate::pixels::source::check(&opts.images)
        .map_err(|u| crate::error::Error::input(&u.path, u.reason))
}
