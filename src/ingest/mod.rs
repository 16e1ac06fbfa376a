//! `cxr ingest`: the CSVs (and image archives) in, a complete warehouse out.
//!
//! Each input is read and cleaned in memory, then written into a staging directory
//! beside the warehouse (the other datasets one by one as they are read), and the
//! staging directory is swapped in whole, so a failed or interrupted ingest leaves the
//! previous warehouse exactly as it was.

pub use crate::input::{csv, issues, table};

pub mod derived;
mod overlap;
mod read;

pub mod across;
mod followup;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use polars::prelude::{PlHashMap, PlHashSet};

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
    /// The `data_issues` about a whole file or dataset, said when the ingest ends.
    pub notes: Vec<String>,
    /// The manifest of the version this ingest replaced, read once the write lock
    /// was held (a writer that waited replaces what the other one committed).
    pub replaced: Option<crate::warehouse::Manifest>,
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
    let as_found = InputStates::take(opts);
    crate::trace("check the inputs", start);
    // Refuse a wrong --warehouse before any work; write nothing for bad inputs. One
    // inside another would be removed with the outer one's old version.
    crate::warehouse::refuse_inside_another_warehouse(&opts.warehouse)?;
    WriteLock::check(&opts.warehouse)?;
    let mut issues = Issues::default();
    let lock = WriteLock::acquire(&opts.warehouse)?;
    // Other writers wait above; from now on the warehouse is ours to change.
    let replaced = lock.base().cloned();
    let staging = lock.stage()?;
    // NIH is read beside the other datasets, and each dataset is written as soon as
    // it is read and those before it are written; with images, while the pixel pass
    // runs (overlap.rs), which a wrong input stops.
    let (written, pixel_run, _cache_guard) = if opts.images.is_empty() {
        (
            read_and_write(opts, &staging, &mut issues, true)?,
            None,
            None,
        )
    } else {
        let (written, run, guard) =
            overlap::write_while_measuring(opts, &lock, &staging, progress, &mut issues)?;
        (written, Some(run), Some(guard))
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
    let notes = issues.about_whole_files();
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
    as_found.check_unchanged(&manifest.inputs)?;
    let t = Instant::now();
    staging.commit(manifest)?;
    crate::trace("commit", t);
    if pixel_run.is_some() {
        remove_pixel_caches(&opts.warehouse);
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
        notes,
        replaced,
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

/// Reads NIH on this thread while the other datasets are read beside it, and writes
/// every table but `data_issues` and the pixel tables, their big tables on threads of
/// their own when `parallel`. A dataset's error is the one reported when NIH's inputs
/// fail too.
fn read_and_write(
    opts: &IngestOptions,
    staging: &Staging,
    issues: &mut Issues,
    parallel: bool,
) -> Result<Written> {
    let start = Instant::now();
    let map = read::label_map(opts)?;
    // NIH's reading and writing take a core; the other datasets one after another
    // on the rest: two big ones read at once held both (+130 MB on the real files)
    // and were no faster.
    let readers = std::thread::available_parallelism().map_or(2, usize::from) - 1;
    std::thread::scope(|s| {
        let others = read::each_dataset(s, opts, &map, readers.max(1));
        match nih::read(&opts.nih_files(), issues) {
            Ok(release) => {
                crate::trace("read NIH", start);
                write_metadata(opts, staging, others.into_iter(), release, issues, parallel)
            }
            Err(e) => Err(others.into_iter().find_map(Result::err).unwrap_or(e)),
        }
    })
}

/// Matches the side inputs against the metadata and writes every table but
/// `data_issues` and the pixel tables (which wait for the pixel pass). The other
/// datasets' `data_issues` come first, as they were given.
fn write_metadata(
    opts: &IngestOptions,
    staging: &Staging,
    others: impl Iterator<Item = Result<read::Part>> + Send,
    release: Release,
    issues: &mut Issues,
    parallel: bool,
) -> Result<Written> {
    let t = Instant::now();
    let write = |name: &str, batch: Result<RecordBatch>| write_table(staging, name, batch);
    let revision = release.revision;
    let nih_rows = release.rows();
    // The cross-dataset tables are written from NIH's rows and then each other
    // dataset's as it is read: on a thread of their own while NIH's own tables are
    // written, or after them. The release is freed once its own tables are written:
    // held until the last dataset was written, it was 180-230 MiB of the ingest's peak.
    let cross_work = move || -> Result<Cross> {
        let mut cross = write_cross_dataset(opts, staging, revision, nih_rows, others)?;
        cross
            .tables
            .push(write("datasets", across::datasets_batch(&cross.datasets))?);
        Ok(cross)
    };
    let ((nih_tables, patient_issues, mut inputs), cross) = if parallel {
        std::thread::scope(|s| {
            let running = s.spawn(cross_work);
            let nih = write_nih_tables(staging, release, parallel);
            (nih, running.join().expect("a table writer does not panic"))
        })
    } else {
        let nih = write_nih_tables(staging, release, parallel);
        (nih, cross_work())
    };
    let cross = cross?;
    let mut read_first = cross.issues;
    read_first.extend(std::mem::take(issues));
    *issues = read_first;
    issues.extend(patient_issues);
    let mut tables = nih_tables?;
    tables.extend(cross.tables);
    inputs.extend(cross.inputs);
    crate::trace("write tables", t);
    Ok(Written {
        tables,
        inputs,
        images: cross.images,
        revision,
    })
}

/// (table, rows) of each table written, or the first error.
type TablesWritten = Result<Vec<(String, u64)>>;

/// NIH's own tables, the big ones each on a thread of its own (when `parallel`) and
/// the small ones on this one: (table, rows) of each, the `data_issues` of
/// `patients`, and the files read. The release is freed then, not held while the
/// other datasets are written.
fn write_nih_tables(
    staging: &Staging,
    release: Release,
    parallel: bool,
) -> (TablesWritten, Issues, Vec<InputFile>) {
    let write = |name: &str, batch: Result<RecordBatch>| write_table(staging, name, batch);
    let images = &release.images;
    let (tables, patient_issues) = std::thread::scope(|s| {
        let images_t = Task::start(s, parallel, || {
            write("images", metadata::images_batch(images))
        });
        let findings_t = Task::start(s, parallel, || {
            write("findings", metadata::findings_batch(images))
        });
        let derived_t = Task::start(s, parallel, || derived::write(images, staging));
        let mut patient_issues = Issues::default();
        let patients = write(
            "patients",
            metadata::patients_batch(images, &release.metadata_name, &mut patient_issues),
        );
        let small = [
            write("bboxes", nih::boxes::boxes_batch(&release.boxes)),
            write("expert_labels", nih::expert::expert_batch(&release.experts)),
        ];
        let mut tables = vec![images_t.join(), findings_t.join(), patients];
        tables.extend(small);
        let tables = tables
            .into_iter()
            .collect::<Result<Vec<_>>>()
            .and_then(|mut tables| {
                tables.extend(derived_t.join()?);
                Ok(tables)
            });
        (tables, patient_issues)
    });
    let Release { images, inputs, .. } = release;
    drop(images);
    give_back_freed_memory();
    (tables, patient_issues, inputs)
}

/// Returns the memory this thread has freed (and that other threads freed of its
/// allocations) to the allocator's pool and the system: between two datasets of an
/// ingest, so that the next is read into it rather than beside it. mimalloc (cxr's
/// allocator) otherwise keeps freed pages a while; a no-op under another allocator.
fn give_back_freed_memory() {
    unsafe extern "C" {
        fn mi_collect(force: bool);
    }
    // SAFETY: mi_collect takes a flag and touches only the allocator's own state; the
    // library is linked (the `mimalloc` dependency) whichever allocator is global.
    unsafe { mi_collect(true) }
}

/// Rows per batch of the cross-dataset tables: a few megabytes of Arrow arrays.
const SLICE: usize = 65_536;

/// What [`write_cross_dataset`] wrote, and what describes the datasets.
struct Cross {
    /// (table, rows) of each cross-dataset table.
    tables: Vec<(String, u64)>,
    /// The `datasets` rows: NIH's, then each other dataset's.
    datasets: Vec<(crate::datasets::DatasetInfo, [Option<i64>; 3])>,
    inputs: Vec<InputFile>,
    /// The other datasets' `data_issues`, in the order they were given.
    issues: Issues,
    /// The images of the datasets whose images are measured.
    images: KnownImages,
}

/// Per dataset whose images are measured, its image ids and each image's sex.
type KnownImages = std::collections::HashMap<
    &'static str,
    PlHashMap<crate::datasets::Shared, Option<&'static str>>,
>;

/// Writes NIH's rows (its images, the labels of its release, Google's labels, its
/// boxes) and then each other dataset's as `others` yields it into the cross-dataset
/// tables: only the dataset being written and those already read wait in memory.
fn write_cross_dataset(
    opts: &IngestOptions,
    staging: &Staging,
    revision: metadata::Revision,
    (rows, mut nih_info): (crate::datasets::DatasetRows, crate::datasets::DatasetInfo),
    others: impl Iterator<Item = Result<read::Part>>,
) -> Result<Cross> {
    let nih_source = revision.source();
    let measured: Vec<&str> = opts.images.iter().map(|i| i.dataset).collect();
    let mut tables = CrossTables::create(staging, nih_source, &measured)?;
    nih_info.label_sources = sources_of(&rows.labels);
    let nih_counts = counts(&rows.images);
    // The other release labels only the images of this one (a metadata file of a
    // few images gets the other release's labels of those images, not of all).
    let nih_images: PlHashSet<crate::datasets::Shared> =
        rows.images.iter().map(|i| i.image_id.clone()).collect();
    tables.write(rows)?;
    let mut cross = Cross {
        tables: Vec::new(),
        datasets: Vec::new(),
        inputs: Vec::new(),
        issues: Issues::default(),
        images: KnownImages::default(),
    };
    for part in others {
        let (mut rows, mut info, issues) = part?;
        cross.issues.extend(issues);
        if info.dataset == "nih" {
            // The other NIH release: labels only, over the same images.
            if info.label_sources == [nih_source] {
                return Err(crate::error::Error::input(
                    opts.other_release.as_deref().unwrap_or(&opts.metadata),
                    format!(
                        "the same NIH release ({}) as the metadata; --other-release takes the other one",
                        revision.name()
                    ),
                ));
            }
            left_out_of_other_release(&mut rows, &nih_images, &info, &mut cross.issues);
            nih_info.source_files.extend(info.source_files);
            nih_info.label_sources.extend(sources_of(&rows.labels));
        } else {
            info.label_sources = sources_of(&rows.labels);
            for spec in opts.datasets.iter().filter(|s| s.name == info.dataset) {
                for p in &spec.paths {
                    cross.inputs.push(InputFile::describe(info.dataset, p)?);
                }
            }
            if rows.images.is_empty() {
                let path = opts
                    .datasets
                    .iter()
                    .find(|s| s.name == info.dataset)
                    .and_then(|s| s.paths.first())
                    .map_or_else(|| opts.metadata.clone(), |p| p.clone());
                return Err(crate::error::Error::input(
                    &path,
                    format!(
                        "no image rows: {}'s files have a header but no usable records (nothing was written)",
                        info.dataset
                    ),
                ));
            }
            shared_studies(&rows.images, &info, &mut cross.issues);
            paths_inside_root(&mut rows.images, &info, &mut cross.issues);
            patients_of_two_sexes(&rows.images, &info, &mut cross.issues);
            normal_beside_findings(&rows.labels, &info, &mut cross.issues);
            if rows.labels.is_empty() && !rows.images.is_empty() {
                let files: Vec<String> = opts
                    .datasets
                    .iter()
                    .filter(|s| s.name == info.dataset)
                    .flat_map(|s| s.paths.iter().map(|p| crate::input::csv::source_name(p)))
                    .collect();
                cross.issues.push(
                    &files.join(","),
                    None,
                    None,
                    None,
                    format!(
                        "no label read from {}'s files: every finding of its {} images is unknown (not normal); check that its label files were given",
                        info.dataset,
                        rows.images.len()
                    ),
                );
            }
            cross.datasets.push((info, counts(&rows.images)));
        }
        tables.write(rows)?;
        give_back_freed_memory();
    }
    nih_info.label_sources.sort();
    nih_info.label_sources.dedup();
    cross.datasets.insert(0, (nih_info, nih_counts));
    if let Some(p) = &opts.other_release {
        cross
            .inputs
            .push(InputFile::describe("metadata_other_release", p)?);
    }
    cross.inputs.push(match &opts.label_map {
        Some(p) => InputFile::describe("label_map", p)?,
        None => shipped_map(),
    });
    let (written, images) = tables.finish()?;
    cross.tables = written;
    cross.images = images;
    Ok(cross)
}

/// An image path that would lead out of the release's folder (`../x`, `/etc/x`) is
/// set to NULL with a `data_issues` row: `export --image-root` joins paths to a root.
/// The readers that take paths from a file's column check them there, naming the
/// line; this catches what the others build.
fn paths_inside_root(
    images: &mut [crate::datasets::ImageRow],
    info: &crate::datasets::DatasetInfo,
    issues: &mut Issues,
) {
    let file = info.source_files.first().map_or("", String::as_str);
    for image in images {
        if let Some(path) = image
            .path
            .take_if(|p| crate::datasets::common::leaves_root(p))
        {
            issues.push(
                file,
                None,
                Some("path"),
                Some(&*path),
                crate::datasets::common::PATH_LEAVES_ROOT,
            );
        }
    }
}

/// The files of `dataset_images`, `dataset_labels`, `finding_states`,
/// `dataset_boxes`, `reports`, `studies` and the follow-up statistics of whole
/// datasets (`followup_summary`, `followup_transitions`), open while the datasets are written
/// into them one after another, each in slices of [`SLICE`] rows.
struct CrossTables<'a> {
    sinks: [(String, parquet::ParquetSink); 8],
    nih_source: &'a str,
    measured: &'a [&'a str],
    known: KnownImages,
    started: Instant,
}

impl<'a> CrossTables<'a> {
    fn create(staging: &Staging, nih_source: &'a str, measured: &'a [&'a str]) -> Result<Self> {
        let opts = parquet::WriteOptions {
            no_dictionary: vec!["image_id", "patient_id", "study_id", "path"],
            // One patient's rows (a timeline) are a few pages, not a fifth of the file.
            page_rows: Some(4096),
            ..Default::default()
        };
        let sink =
            |name: &str, empty: Result<RecordBatch>| -> Result<(String, parquet::ParquetSink)> {
                let path = staging.path(&format!("{name}.parquet"));
                Ok((
                    name.to_string(),
                    parquet::ParquetSink::create(&path, &empty?.schema(), &opts)?,
                ))
            };
        let no_states = PlHashMap::default();
        Ok(CrossTables {
            sinks: [
                sink("dataset_images", across::images_batch(&[], &no_states, &[]))?,
                sink("dataset_labels", across::labels_batch(&[]))?,
                sink("finding_states", across::states_batch(&[]))?,
                sink("dataset_boxes", across::boxes_batch(&[]))?,
                sink("reports", across::reports_batch(&[]))?,
                sink("studies", across::no_studies())?,
                sink("followup_summary", followup::no_rows().map(|(s, _)| s))?,
                sink("followup_transitions", followup::no_rows().map(|(_, t)| t))?,
            ],
            nih_source,
            measured,
            known: KnownImages::default(),
            started: Instant::now(),
        })
    }

    /// Writes one dataset's rows (freed once written).
    fn write(&mut self, rows: crate::datasets::DatasetRows) -> Result<()> {
        let started = Instant::now();
        let crate::datasets::DatasetRows {
            images,
            labels,
            boxes,
            reports,
        } = rows;
        if let Some(first) = images.first()
            && self.measured.contains(&first.dataset)
        {
            let ids = self.known.entry(first.dataset).or_default();
            ids.extend(images.iter().map(|i| (i.image_id.clone(), i.sex)));
        }
        let nih_source = self.nih_source;
        let [
            images_sink,
            labels_sink,
            states_sink,
            boxes_sink,
            reports_sink,
            studies_sink,
            summary_sink,
            transitions_sink,
        ] = &mut self.sinks;
        // Three writers at once: the labels (which need no finding states, so they
        // start while those are resolved), the images, and the states and studies.
        // One dataset written on one thread left a core idle once the readers were
        // done.
        std::thread::scope(|outer| -> Result<()> {
            let labels_written = outer.spawn(|| -> Result<()> {
                for rows in labels.chunks(SLICE) {
                    labels_sink.1.write(&across::labels_batch(rows)?)?;
                }
                for rows in boxes.chunks(SLICE) {
                    boxes_sink.1.write(&across::boxes_batch(rows)?)?;
                }
                for rows in reports.chunks(SLICE) {
                    reports_sink.1.write(&across::reports_batch(rows)?)?;
                }
                Ok(())
            });
            let sources = across::source_states(&labels);
            let states = across::default_states(&sources, nih_source);
            std::thread::scope(|inner| -> Result<()> {
                let images_written = inner.spawn(|| -> Result<()> {
                    let ranks = across::ranks(&images);
                    for (rows, ranks) in images.chunks(SLICE).zip(ranks.chunks(SLICE)) {
                        images_sink
                            .1
                            .write(&across::images_batch(rows, &states, ranks)?)?;
                    }
                    Ok(())
                });
                for rows in sources.0.chunks(SLICE) {
                    states_sink.1.write(&across::states_batch(rows)?)?;
                }
                for rows in across::reader_votes(&sources).chunks(SLICE) {
                    states_sink.1.write(&across::states_batch(rows)?)?;
                }
                let (summary, transitions) =
                    across::write_studies(&images, &states, SLICE, |b| studies_sink.1.write(b))?;
                summary_sink.1.write(&summary)?;
                transitions_sink.1.write(&transitions)?;
                images_written
                    .join()
                    .expect("a table writer does not panic")
            })?;
            labels_written
                .join()
                .expect("a table writer does not panic")
        })?;
        // A row group per dataset: its encoded pages are not held while the next
        // dataset is read and written, and a query of one dataset skips the others'.
        for (_, sink) in &mut self.sinks {
            sink.end_row_group()?;
        }
        if let Some(first) = images.first() {
            crate::trace(&format!("  write {}", first.dataset), started);
        }
        Ok(())
    }

    /// Closes the files: (table, rows) of each, and the measured datasets' images.
    fn finish(self) -> Result<(Vec<(String, u64)>, KnownImages)> {
        crate::trace(
            "  write dataset_images, dataset_labels, finding_states, dataset_boxes, reports, studies, follow-up statistics",
            self.started,
        );
        let tables = self
            .sinks
            .into_iter()
            .map(|(name, sink)| Ok((name, sink.finish()?)))
            .collect::<Result<_>>()?;
        Ok((tables, self.known))
    }
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

/// A `data_issues` row for each study id of a dataset that more than one patient's
/// images carry (one PadChest `StudyID` has two `PatientID`s): a study is one
/// patient's, so `studies` (for datasets that order studies) holds more rows than
/// `datasets.n_studies` counts ids.
fn shared_studies(
    images: &[crate::datasets::ImageRow],
    info: &crate::datasets::DatasetInfo,
    issues: &mut Issues,
) {
    let mut patients: polars::prelude::PlHashMap<&str, Vec<&str>> = Default::default();
    for image in images {
        if let (Some(study), Some(patient)) =
            (image.study_id.as_deref(), image.patient_id.as_deref())
        {
            let of_study = patients.entry(study).or_default();
            if !of_study.contains(&patient) {
                of_study.push(patient);
            }
        }
    }
    let mut shared: Vec<(&str, Vec<&str>)> =
        patients.into_iter().filter(|(_, p)| p.len() > 1).collect();
    shared.sort_unstable();
    let file = info.source_files.first().map_or("", String::as_str);
    for (study, of_study) in shared {
        issues.push(
            file,
            None,
            Some("study_id"),
            Some(study),
            format!(
                "one study id for {} patients ({}); counted as a study of each patient, kept",
                of_study.len(),
                of_study.join(", ")
            ),
        );
    }
}

/// A patient whose images say both sexes gets a `data_issues` row (each image keeps
/// its own): a cohort by sex splits such a patient.
/// Keeps the other NIH release's labels of the images the metadata file lists; the
/// rest are said in one `data_issues` row.
fn left_out_of_other_release(
    rows: &mut crate::datasets::DatasetRows,
    images: &PlHashSet<crate::datasets::Shared>,
    info: &crate::datasets::DatasetInfo,
    issues: &mut Issues,
) {
    let mut outside: PlHashSet<crate::datasets::Shared> = PlHashSet::default();
    rows.labels.retain(|l| {
        let kept = images.contains(&l.image_id);
        if !kept {
            outside.insert(l.image_id.clone());
        }
        kept
    });
    if outside.is_empty() {
        return;
    }
    let file = info.source_files.first().map_or("", String::as_str);
    issues.push(
        file,
        None,
        None,
        None,
        format!(
            "{} images of this release are not in the metadata file; their labels are left out",
            outside.len()
        ),
    );
}

fn patients_of_two_sexes(
    images: &[crate::datasets::ImageRow],
    info: &crate::datasets::DatasetInfo,
    issues: &mut Issues,
) {
    let mut sexes: polars::prelude::PlHashMap<&str, [u32; 2]> = Default::default();
    for image in images {
        if let (Some(patient), Some(sex)) = (image.patient_id.as_deref(), image.sex) {
            sexes.entry(patient).or_default()[usize::from(sex == "F")] += 1;
        }
    }
    let mut both: Vec<(&str, [u32; 2])> = sexes
        .into_iter()
        .filter(|(_, [m, f])| *m > 0 && *f > 0)
        .collect();
    both.sort_unstable();
    let file = info.source_files.first().map_or("", String::as_str);
    for (patient, [m, f]) in both {
        issues.push(
            file,
            None,
            Some("patient_id"),
            Some(patient),
            format!(
                "patient's images say both sexes ({m} M, {f} F); each image keeps its own, kept"
            ),
        );
    }
}

/// An image a source states normal (its dataset's normal label positive) beside
/// findings or other labels stated positive or uncertain: the image is not normal,
/// every label kept, and a `data_issues` row per image and source says so (NIH's
/// reader says it of its `No Finding|Effusion` as it reads the line).
fn normal_beside_findings(
    labels: &[crate::datasets::LabelRow],
    info: &crate::datasets::DatasetInfo,
    issues: &mut Issues,
) {
    use crate::datasets::label_map::same_label;
    let Some(dataset) = crate::datasets::dataset(info.dataset) else {
        return;
    };
    let Some(normal) = dataset.normal_label else {
        return;
    };
    let allowed = |raw: &str| dataset.beside_normal.is_some_and(|b| same_label(raw, b));
    // The images and sources stating normal, then their other labels stated.
    let mut stated: PlHashMap<(&str, &str), Vec<&str>> = labels
        .iter()
        .filter(|l| l.value == 1 && same_label(&l.raw_label, normal))
        .map(|l| ((&*l.image_id, &*l.source), Vec::new()))
        .collect();
    for l in labels.iter().filter(|l| l.value != 0) {
        if let Some(others) = stated.get_mut(&(&*l.image_id, &*l.source))
            && !same_label(&l.raw_label, normal)
            && !allowed(&l.raw_label)
            && !others.contains(&&*l.raw_label)
        {
            others.push(&l.raw_label);
        }
    }
    let mut both: Vec<((&str, &str), Vec<&str>)> = stated
        .into_iter()
        .filter(|(_, others)| !others.is_empty())
        .collect();
    both.sort_unstable();
    let file = info.source_files.first().map_or("", String::as_str);
    for ((image, source), others) in both {
        issues.push(
            file,
            None,
            Some("labels"),
            Some(image),
            format!(
                "{source} states the image normal ({normal}) and also {}; the image is not normal, every label kept",
                others.join(", ")
            ),
        );
    }
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

/// Removes the resume caches of every interrupted pixel pass, not only this one's:
/// one of other inputs (an archive replaced, a dataset added) would never be
/// resumed by the commands that follow, and stayed in the warehouse.
fn remove_pixel_caches(warehouse: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(warehouse) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".pixels-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
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
            .is_some_and(|ids| ids.contains_key(image.image_id.as_str()));
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
    let mut archives: Vec<&str> = run.names.iter().map(|i| i.archive.as_str()).collect();
    archives.sort_unstable();
    archives.dedup();
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
                let as_read = (!sex.is_null(i)).then(|| sex.value(i));
                let (Some(stated), Some(as_read)) = (stated, as_read) else {
                    continue;
                };
                let dicom = as_read.trim().to_uppercase();
                if matches!(dicom.as_str(), "M" | "F") && dicom != stated {
                    let (archive, member) =
                        crate::pixels::run::archive_and_member(source.value(i), &archives);
                    issues.push(
                        &csv::source_name(std::path::Path::new(archive)),
                        None,
                        Some(member),
                        Some(as_read),
                        format!(
                            "DICOM PatientSex '{as_read}' differs from {}'s sex '{stated}' for image '{}'; the dataset's value kept",
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

/// An input file exists and is a regular file; a missing default (the shipped NIH
/// files) says where defaults come from.
fn check_input(path: &std::path::Path) -> Result<()> {
    let checked = csv::check_exists(path);
    if checked.is_err() && !path.exists() && path.starts_with(crate::data_dir()) {
        return Err(crate::error::Error::input(
            path,
            "input file not found: the default NIH files are read from data/ of the checkout cxr was built from; set $CXR_DATA to a folder that holds them, or name the files (--metadata, --bbox, --expert, --splits, --images)",
        ));
    }
    checked
}

/// One file given for two inputs (`chexpert=A,A`, `--bbox A --expert A`) would be
/// read twice, its rows counted twice or refused as repeats: refused before any read.
fn refuse_read_twice(path: &std::path::Path, seen: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if seen.contains(&real) {
        return Err(crate::error::Error::Usage(format!(
            "{} is given twice (by flags, or by one flag and another input's default from data/: \
             --bbox, --expert, --splits and --other-release are read unless --no-bbox, ...); \
             give each input file once",
            path.display()
        )));
    }
    seen.push(real);
    Ok(())
}

/// The table inputs of an ingest (NIH's files, the datasets', the label map).
fn table_inputs(opts: &IngestOptions) -> Vec<&std::path::Path> {
    std::iter::once(&opts.metadata)
        .chain(opts.splits.iter().flatten())
        .chain(&opts.bbox)
        .chain(&opts.expert)
        .chain(&opts.other_release)
        .chain(&opts.label_map)
        .chain(opts.datasets.iter().flat_map(|d| &d.paths))
        .map(PathBuf::as_path)
        .collect()
}

/// The size and time of change of every table input before any is read. A file
/// that grows or shrinks while cxr reads it (a download still being written) gave
/// tables of one part of it and a manifest describing another; such an ingest now
/// fails, nothing written. (Image inputs are hashed as they are read.)
struct InputStates(Vec<(PathBuf, Option<(u64, std::time::SystemTime)>)>);

impl InputStates {
    fn take(opts: &IngestOptions) -> InputStates {
        InputStates(
            table_inputs(opts)
                .into_iter()
                .map(|p| (p.to_path_buf(), Self::state(p)))
                .collect(),
        )
    }

    fn state(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    }

    /// Refuses the ingest when an input changed since it began, or its bytes as
    /// hashed for the manifest are not the size it had then.
    fn check_unchanged(&self, described: &[InputFile]) -> Result<()> {
        for (path, before) in &self.0 {
            let hashed = described
                .iter()
                .find(|i| std::path::Path::new(&i.path) == path.as_path())
                .map(|i| i.size);
            let changed = Self::state(path) != *before
                || hashed.is_some_and(|size| Some(size) != before.map(|(len, _)| len));
            if changed {
                return Err(crate::error::Error::input(
                    path,
                    "changed while cxr read it (its size or time of change is not what it was when the ingest began); nothing was written: run the ingest again once the file is complete",
                ));
            }
        }
        Ok(())
    }
}

/// Fails before anything is read if an input file does not exist.
fn check_inputs(opts: &IngestOptions) -> Result<()> {
    check_input(&opts.metadata)?;
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
    let mut seen: Vec<std::path::PathBuf> = Vec::new();
    for p in files {
        check_input(p)?;
        refuse_read_twice(p, &mut seen)?;
    }
    // The split lists say it themselves (the same file as the train_val list).
    for p in opts.splits.iter().flatten() {
        check_input(p)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An input that grows between the start of an ingest and its commit, or whose
    /// bytes as hashed are not the size it had at the start, refuses the commit.
    #[test]
    fn an_input_changed_while_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("meta.csv");
        std::fs::write(&file, "a,b\n1,2\n").unwrap();
        let opts = IngestOptions::metadata_only(file.clone(), dir.path().join("wh"));
        let described = |size| {
            vec![InputFile {
                role: "metadata".into(),
                path: file.display().to_string(),
                size,
                sha256: String::new(),
            }]
        };
        let states = InputStates::take(&opts);
        assert!(states.check_unchanged(&described(8)).is_ok());
        // Hashed at another size than it had when the ingest began.
        let error = states.check_unchanged(&described(20)).unwrap_err();
        assert!(
            error.to_string().contains("changed while cxr read it"),
            "{error}"
        );
        // Grown since.
        std::fs::write(&file, "a,b\n1,2\n3,4\n").unwrap();
        assert!(states.check_unchanged(&described(8)).is_err());
    }
}
