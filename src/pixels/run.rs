//! The measuring run: one reader thread streams members, worker threads decode and
//! measure them through bounded queues, and the collector puts results back in
//! member order and commits them in chunks, so an interrupted run resumes where the
//! last committed chunk ended.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Int32Builder, ListBuilder, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::pixels::decode::decode;
use crate::pixels::dicom;
use crate::pixels::resume::{self, ChunkDigest};
use crate::pixels::source::{self, ImageInput, Kind, Member};
use crate::pixels::stats::{self, Stats};
use crate::warehouse::InputFile;
use crate::warehouse::parquet::{self, WriteOptions};

/// Members per committed chunk.
pub const CHUNK: u64 = 4096;

/// One measured image.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The dataset of its input.
    pub dataset: &'static str,
    /// Its id in the dataset, from the member path by the dataset's naming.
    pub image_id: String,
    /// File name of the member.
    pub image_index: String,
    /// `<archive or folder>:<member path>`.
    pub source: String,
    /// Where the archive or folder ends in `source` (either part may hold a `:`).
    pub archive_end: usize,
    /// `png`, `jpeg` or `dicom`.
    pub format: &'static str,
    /// Size of the file.
    pub file_bytes: i64,
    /// Decoded size.
    pub width: i32,
    /// Decoded size.
    pub height: i32,
    /// As stored.
    pub bit_depth: i8,
    /// Bits of the values measured.
    pub bits_stored: i8,
    /// As stored.
    pub color_type: &'static str,
    /// DICOM's PhotometricInterpretation.
    pub photometric: Option<String>,
    /// The statistics.
    pub stats: Stats,
    /// DICOM's header fields.
    pub dicom: Option<Box<dicom::Header>>,
}

/// One row of `pixel_errors`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PixelError {
    /// The dataset of the input.
    #[serde(default)]
    pub dataset: String,
    /// The image's id, where there is a member.
    #[serde(default)]
    pub image_id: Option<String>,
    /// The archive or folder.
    pub source: String,
    /// The member path (empty for damage to the archive itself).
    pub member: String,
    /// The member's file name, when there is a member.
    pub image_index: Option<String>,
    /// What went wrong.
    pub error: String,
}

/// What a finished chunk records besides its measured rows.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChunkInfo {
    members: u64,
    skipped: u64,
    errors: Vec<PixelError>,
    /// Image keys (dataset and image id) seen in the chunk (measured or failed), for
    /// duplicate detection, each followed by `\u{1}` and the member it was read from
    /// (`archive:path`; absent in chunks of an older cxr).
    names: Vec<String>,
    /// The digest of the chunk's members ([`resume::ChunkDigest`]); a chunk
    /// without one (written by an older cxr) is measured again.
    #[serde(default)]
    digest: String,
}

/// The outcome of a measuring run.
#[derive(Debug, Default)]
pub struct PixelRun {
    /// Chunk files holding `pixel_stats` rows, in member order.
    pub chunks: Vec<PathBuf>,
    /// Rows of `pixel_errors`.
    pub errors: Vec<PixelError>,
    /// Images measured.
    pub measured: u64,
    /// Members skipped as not PNG.
    pub skipped: u64,
    /// Members already committed by an earlier, interrupted run.
    pub resumed: u64,
    /// Images among `measured` that an earlier, interrupted run measured.
    pub resumed_images: u64,
    /// The measured images, for the check against the datasets' images.
    pub names: Vec<MeasuredImage>,
    /// The image inputs, each hashed while it streamed.
    pub inputs: Vec<InputFile>,
    /// Wall time.
    pub seconds: f64,
}

/// A measured image and where it came from.
#[derive(Debug, Clone)]
pub struct MeasuredImage {
    pub dataset: String,
    pub image_id: String,
    /// The archive or folder.
    pub archive: String,
    /// The member path inside it.
    pub member: String,
}

impl PixelRun {
    /// The chunk files holding `dicom_headers` rows, in member order.
    pub fn dicom_chunks(&self) -> Vec<PathBuf> {
        self.chunks.iter().map(|c| dicom_chunk_path(c)).collect()
    }
}

enum Outcome {
    Measured(Box<Measured>),
    Failed(PixelError),
    Skipped,
}

/// The schema of `pixel_stats`.
pub fn stats_schema() -> SchemaRef {
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    let i32f = |n: &str| Field::new(n, DataType::Int32, true);
    let f64f = |n: &str| Field::new(n, DataType::Float64, false);
    let mut fields = vec![
        utf8("dataset"),
        utf8("image_id"),
        utf8("image_index"),
        utf8("source"),
        utf8("format"),
        Field::new("file_bytes", DataType::Int64, false),
        Field::new("width", DataType::Int32, false),
        Field::new("height", DataType::Int32, false),
        Field::new("bit_depth", DataType::Int8, false),
        Field::new("bits_stored", DataType::Int8, false),
        utf8("color_type"),
        Field::new("photometric", DataType::Utf8, true),
        f64f("mean"),
        f64f("std"),
    ];
    fields.extend(VALUE_COLUMNS.iter().map(|c| i32f(c)));
    fields.extend(NORMALISED_COLUMNS.iter().map(|c| f64f(c)));
    fields.extend([
        f64f("entropy"),
        Field::new(
            "histogram",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            false,
        ),
        utf8("dhash"),
    ]);
    Arc::new(Schema::new(fields))
}

/// The statistics on stored values: min, max, then the percentiles.
const VALUE_COLUMNS: [&str; 7] = ["min", "max", "p01", "p05", "p50", "p95", "p99"];

/// The same and the mean and std, divided by the largest value of the depth.
const NORMALISED_COLUMNS: [&str; 9] = [
    "mean_norm",
    "std_norm",
    "min_norm",
    "max_norm",
    "p01_norm",
    "p05_norm",
    "p50_norm",
    "p95_norm",
    "p99_norm",
];

impl Stats {
    /// min, max and the percentiles, in [`VALUE_COLUMNS`] order.
    fn values(&self) -> [i32; 7] {
        let p = self.percentiles;
        [self.min, self.max, p[0], p[1], p[2], p[3], p[4]]
    }

    /// The [`NORMALISED_COLUMNS`], in order.
    fn normalised(&self) -> [f64; 9] {
        let v = self.values().map(|x| x as f64 / self.scale);
        [
            self.mean / self.scale,
            self.std / self.scale,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            v[6],
        ]
    }
}

/// The schema of `pixel_errors`.
pub fn errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("dataset", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("member", DataType::Utf8, false),
        Field::new("image_index", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, false),
    ]))
}

/// Builds a `pixel_stats` batch.
pub fn stats_batch(rows: &[Measured]) -> Result<RecordBatch> {
    use crate::input::table::{f64s, i8s, i32s, i64s, text, utf8};
    let mut hist = ListBuilder::new(Int32Builder::new());
    for r in rows {
        hist.values().append_slice(&r.stats.histogram);
        hist.append(true);
    }
    let float = |f: &dyn Fn(&Measured) -> f64| f64s(rows.iter().map(|r| Some(f(r))));
    // Each row's derived statistics once, then column by column.
    let values: Vec<[i32; 7]> = rows.iter().map(|r| r.stats.values()).collect();
    let normalised: Vec<[f64; 9]> = rows.iter().map(|r| r.stats.normalised()).collect();
    let mut columns: Vec<ArrayRef> = vec![
        text(rows.iter().map(|r| r.dataset)),
        text(rows.iter().map(|r| &*r.image_id)),
        text(rows.iter().map(|r| r.image_index.as_str())),
        text(rows.iter().map(|r| r.source.as_str())),
        text(rows.iter().map(|r| r.format)),
        i64s(rows.iter().map(|r| Some(r.file_bytes))),
        i32s(rows.iter().map(|r| Some(r.width))),
        i32s(rows.iter().map(|r| Some(r.height))),
        i8s(rows.iter().map(|r| Some(r.bit_depth))),
        i8s(rows.iter().map(|r| Some(r.bits_stored))),
        text(rows.iter().map(|r| r.color_type)),
        utf8(rows.iter().map(|r| r.photometric.as_deref())),
        float(&|r| r.stats.mean),
        float(&|r| r.stats.std),
    ];
    columns.extend((0..VALUE_COLUMNS.len()).map(|k| i32s(values.iter().map(|v| Some(v[k])))));
    columns
        .extend((0..NORMALISED_COLUMNS.len()).map(|k| f64s(normalised.iter().map(|v| Some(v[k])))));
    columns.extend([
        float(&|r| r.stats.entropy),
        Arc::new(hist.finish()) as ArrayRef,
        text(rows.iter().map(|r| r.stats.dhash.as_str())),
    ]);
    Ok(RecordBatch::try_new(stats_schema(), columns)?)
}

/// Builds the `pixel_errors` batch.
pub fn errors_batch(rows: &[PixelError]) -> Result<RecordBatch> {
    use crate::input::table::{text, utf8};
    let columns: Vec<ArrayRef> = vec![
        text(rows.iter().map(|r| r.dataset.as_str())),
        utf8(rows.iter().map(|r| r.image_id.as_deref())),
        text(rows.iter().map(|r| r.source.as_str())),
        text(rows.iter().map(|r| r.member.as_str())),
        utf8(rows.iter().map(|r| r.image_index.as_deref())),
        text(rows.iter().map(|r| r.error.as_str())),
    ];
    Ok(RecordBatch::try_new(errors_schema(), columns)?)
}

/// A key for the resume cache: the inputs' paths, sizes and modification times.
pub fn cache_key(inputs: &[ImageInput]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    // The chunks' tables: a cache of another layout is not read.
    h.update(b"pixel_stats v2, dicom_headers v1");
    h.update(CHUNK.to_le_bytes());
    for ImageInput { dataset, path: p } in inputs {
        h.update(dataset.as_bytes());
        if p.is_dir() {
            for f in source::walk(p) {
                h.update(f.to_string_lossy().as_bytes());
                if let Ok(m) = f.metadata() {
                    h.update(m.len().to_le_bytes());
                    if let Ok(t) = m.modified()
                        && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
                    {
                        h.update(d.as_nanos().to_le_bytes());
                    }
                }
            }
        }
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        h.update(abs.to_string_lossy().as_bytes());
        if let Ok(m) = std::fs::metadata(p) {
            h.update(m.len().to_le_bytes());
            if let Ok(t) = m.modified()
                && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
            {
                h.update(d.as_nanos().to_le_bytes());
            }
        }
        h.update([0]);
    }
    crate::warehouse::hex(&h.finalize())[..16].to_string()
}

fn chunk_paths(cache: &Path, k: u64) -> (PathBuf, PathBuf) {
    (
        cache.join(format!("chunk-{k:06}.parquet")),
        cache.join(format!("chunk-{k:06}.json")),
    )
}

/// The `dicom_headers` rows of a chunk, beside its `pixel_stats` rows.
fn dicom_chunk_path(stats_chunk: &Path) -> PathBuf {
    stats_chunk.with_extension("dicom.parquet")
}

/// Progress reporting: a bar on a terminal, nothing otherwise.
pub trait Progress: Send {
    /// Called now and then with images done and bytes read.
    fn update(&self, images: u64, bytes: u64);
    /// Called once at the end.
    fn finish(&self);
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn update(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}

/// Measures every member of `inputs`, committing chunks under `cache` and resuming
/// from the chunks an earlier run left there.
pub fn measure(inputs: &[ImageInput], cache: &Path, progress: &dyn Progress) -> Result<PixelRun> {
    measure_until(
        inputs,
        cache,
        progress,
        &std::sync::atomic::AtomicBool::new(false),
    )
}

/// [`measure`], stopping with an error (the chunks committed so far kept) as soon as
/// `cancel` is set: ingest measures while it reads the CSVs, and stops if they fail.
pub fn measure_until(
    inputs: &[ImageInput],
    cache: &Path,
    progress: &dyn Progress,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<PixelRun> {
    let start = Instant::now();
    source::check(inputs).map_err(|u| Error::input(&u.path, u.reason))?;
    std::fs::create_dir_all(cache).ctx(|| format!("{}: cannot create", cache.display()))?;

    // Resume: the chunks committed from 0 on, kept as far as the inputs still
    // hold the same members.
    let mut run = PixelRun::default();
    let mut seen = Seen::new();
    let committed = committed_chunks(cache);
    let finished = committed.last().is_some_and(|c| c.members < CHUNK);
    let verified = if committed.is_empty() {
        resume::Verified {
            valid: 0,
            inputs: None,
        }
    } else {
        let digests: Vec<String> = committed.iter().map(|c| c.digest.clone()).collect();
        resume::verify(inputs, CHUNK, &digests, finished)
    };
    if verified.valid < committed.len() {
        say!(
            "cxr: the images changed since the interrupted run; measuring again from member {}",
            verified.valid as u64 * CHUNK
        );
        discard_chunks(cache, verified.valid as u64);
    }
    let k = verified.valid as u64;
    for (i, info) in committed.into_iter().take(verified.valid).enumerate() {
        let (pq, _) = chunk_paths(cache, i as u64);
        absorb(&mut run, &mut seen, &pq, info, inputs)?;
    }
    if let Some(described) = verified.inputs {
        // Everything was measured before, and read again to check it: done.
        run.inputs = described;
        run.seconds = start.elapsed().as_secs_f64();
        return Ok(run);
    }
    let resume_from = k * CHUNK;
    let digests: Digests = Arc::default();

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (job_tx, job_rx) = sync_channel::<Vec<Member>>(workers * 2);
    let budget = Arc::new(Budget::new(QUEUE_BYTES));
    let (res_tx, res_rx) = sync_channel::<Vec<(u64, Outcome)>>(workers * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let bytes_read = Arc::new(AtomicU64::new(0));

    std::thread::scope(|scope| -> Result<()> {
        let reader = {
            let bytes_read = bytes_read.clone();
            let seen_before = seen.clone();
            let budget = budget.clone();
            let digests = digests.clone();
            scope.spawn(move || {
                read_members(
                    inputs,
                    resume_from,
                    bytes_read,
                    seen_before,
                    job_tx,
                    &budget,
                    &digests,
                )
            })
        };
        for _ in 0..workers {
            let rx = job_rx.clone();
            let tx = res_tx.clone();
            let budget = budget.clone();
            scope.spawn(move || work(rx, tx, &budget));
        }
        // Only the workers hold the queues now: if the collector stops early, they
        // and then the reader see closed channels and stop too.
        drop(res_tx);
        drop(job_rx);
        let collected = collect(
            res_rx,
            cache,
            &digests,
            k,
            &mut run,
            &mut seen,
            &bytes_read,
            progress,
            cancel,
        );
        let read = reader.join().expect("reader thread does not panic");
        let (last, mut rows, mut info) = collected?;
        run.inputs = read.map_err(|u| Error::input(&u.path, u.reason))?;
        // Only a complete read may commit the last chunk, which marks the end.
        info.digest = take_digest(&digests, last);
        commit_chunk(cache, last, &mut rows, &mut info, &mut run, &mut seen)
    })?;
    progress.finish();
    run.seconds = start.elapsed().as_secs_f64();
    Ok(run)
}

/// The chunks an earlier run committed, from 0 on, up to the first missing or
/// unreadable one (a file cut short or damaged is measured again, not an error of
/// every later run).
fn committed_chunks(cache: &Path) -> Vec<ChunkInfo> {
    let mut chunks = Vec::new();
    loop {
        let (pq, js) = chunk_paths(cache, chunks.len() as u64);
        let Some(info) = std::fs::read_to_string(&js)
            .ok()
            .and_then(|text| serde_json::from_str::<ChunkInfo>(&text).ok())
        else {
            break;
        };
        let readable = |p: &Path| parquet::read(p).is_ok();
        if !readable(&pq) || !readable(&dicom_chunk_path(&pq)) {
            break;
        }
        let last = info.members < CHUNK;
        chunks.push(info);
        if last {
            break;
        }
    }
    chunks
}

/// Removes the committed chunks from `first` on (their members changed).
fn discard_chunks(cache: &Path, first: u64) {
    for k in first.. {
        let (pq, js) = chunk_paths(cache, k);
        let gone = std::fs::remove_file(&js).is_err();
        let _ = std::fs::remove_file(dicom_chunk_path(&pq));
        let _ = std::fs::remove_file(&pq);
        if gone {
            break;
        }
    }
}

/// Adds a chunk committed by an earlier run.
fn absorb(
    run: &mut PixelRun,
    seen: &mut Seen,
    chunk: &Path,
    info: ChunkInfo,
    inputs: &[ImageInput],
) -> Result<()> {
    let archives: Vec<String> = inputs
        .iter()
        .map(|i| i.path.display().to_string())
        .collect();
    for b in parquet::read(chunk)? {
        let text = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .cloned()
                .ok_or_else(|| Error::Query(format!("{}: no {name} column", chunk.display())))
        };
        let (dataset, id, src) = (text("dataset")?, text("image_id")?, text("source")?);
        for i in 0..b.num_rows() {
            let (archive, member) = archive_and_member(src.value(i), &archives);
            note_measured(run, dataset.value(i), id.value(i), archive, member);
        }
        run.resumed_images += b.num_rows() as u64;
    }
    run.resumed += info.members;
    note_chunk(run, seen, chunk, info.skipped, info.errors, info.names);
    Ok(())
}

/// A pixel row's `source` (`<archive>:<member>`) split at the end of the archive or
/// folder among `archives` it names: either side may hold a `:` of its own. A source
/// of none of them (a run resumed with its input spelled otherwise, `./x.tar`) is
/// split at its last `:`.
pub fn archive_and_member<'s>(source: &'s str, archives: &[impl AsRef<str>]) -> (&'s str, &'s str) {
    archives
        .iter()
        .map(AsRef::as_ref)
        .filter(|a| source.len() > a.len() && source.starts_with(a))
        .filter(|a| source.as_bytes()[a.len()] == b':')
        .max_by_key(|a| a.len())
        .map(|a| (&source[..a.len()], &source[a.len() + 1..]))
        .or_else(|| source.rsplit_once(':'))
        .unwrap_or((source, ""))
}

/// Counts one measured image and keeps where it came from.
fn note_measured(run: &mut PixelRun, dataset: &str, image_id: &str, archive: &str, member: &str) {
    run.names.push(MeasuredImage {
        dataset: dataset.to_string(),
        image_id: image_id.to_string(),
        archive: archive.to_string(),
        member: member.to_string(),
    });
    run.measured += 1;
}

/// Adds a committed chunk's file, skips, errors and names to the run.
fn note_chunk(
    run: &mut PixelRun,
    seen: &mut Seen,
    parquet: &Path,
    skipped: u64,
    errors: Vec<PixelError>,
    names: Vec<String>,
) {
    run.chunks.push(parquet.to_path_buf());
    run.skipped += skipped;
    run.errors.extend(errors);
    for entry in names {
        let (key, from) = match entry.split_once('\u{1}') {
            Some((key, from)) => (key.to_string(), from.to_string()),
            None => (entry, String::new()),
        };
        // A later copy (a duplicate's error row) keeps the first one named.
        seen.entry(key).or_insert(from);
    }
}

/// Every image key read so far (dataset and image id), with the member it was read
/// from first.
type Seen = HashMap<String, String>;

/// A [`ChunkInfo::names`] entry: the key and the member it was read from.
fn seen_entry(key: String, from: &str) -> String {
    format!("{key}\u{1}{from}")
}

/// Members go to the workers in batches of up to this many members or bytes: one
/// hand-over per image woke threads so often that scheduling took a tenth of the time.
const BATCH_MEMBERS: usize = 32;
const BATCH_BYTES: u64 = 2 << 20;

/// Members on their way to the job queue, with their PNG bytes.
#[derive(Default)]
struct Batch {
    members: Vec<Member>,
    bytes: u64,
}

impl Batch {
    fn full(&self) -> bool {
        self.members.len() >= BATCH_MEMBERS || self.bytes >= BATCH_BYTES
    }

    /// Queues the members once their bytes fit in the budget; false if the workers
    /// have stopped.
    fn send(&mut self, jobs: &SyncSender<Vec<Member>>, budget: &Budget) -> bool {
        if self.members.is_empty() {
            return true;
        }
        budget.take(self.bytes);
        self.bytes = 0;
        jobs.send(std::mem::take(&mut self.members)).is_ok()
    }
}

/// The reader: streams members into the job queue, turning repeated names into
/// duplicate errors (a decision that must be made in member order).
fn read_members(
    inputs: &[ImageInput],
    resume_from: u64,
    bytes_read: Arc<AtomicU64>,
    mut seen: Seen,
    jobs: SyncSender<Vec<Member>>,
    budget: &Budget,
    digests: &Digests,
) -> std::result::Result<Vec<InputFile>, source::Unreadable> {
    let mut batch = Batch::default();
    let mut digest = ChunkDigest::default();
    let mut next = resume_from;
    let read = source::stream(inputs, resume_from, bytes_read, &mut |mut m: Member| {
        // Members committed by an earlier run are accounted for already.
        if m.ordinal < resume_from {
            return true;
        }
        // Digested before any decision about the member, as `resume::verify` does.
        digest.add(&m);
        next = m.ordinal + 1;
        if next.is_multiple_of(CHUNK) {
            digests
                .lock()
                .expect("digest lock")
                .insert(m.ordinal / CHUNK, digest.take());
        }
        // Failed image members claim their id too, as they do in a resumed run.
        if matches!(m.kind, Kind::Failed(_)) && !m.path.is_empty() {
            let key = image_key(m.dataset, &m.image_id());
            seen.entry(key)
                .or_insert_with(|| format!("{}:{}", m.source, m.path));
        }
        if matches!(m.kind, Kind::Image(_)) {
            let key = image_key(m.dataset, &m.image_id());
            match seen.get(&key) {
                // The first copy decides, measured or not: which copy counts must not
                // depend on how each decodes.
                Some(first) => {
                    let first = if first.is_empty() {
                        "an earlier member"
                    } else {
                        first
                    };
                    m.kind = Kind::Failed(format!(
                        "duplicate image: {} image '{}' was read first from {first}, whose row stands for it",
                        m.dataset,
                        m.image_id()
                    ));
                }
                None => {
                    seen.insert(key, format!("{}:{}", m.source, m.path));
                }
            }
        }
        if let Kind::Image(bytes) = &m.kind {
            batch.bytes += bytes.len() as u64;
        }
        batch.members.push(m);
        !batch.full() || batch.send(&jobs, budget)
    });
    batch.send(&jobs, budget);
    if read.is_ok() {
        // The final, partial chunk (possibly empty).
        digests
            .lock()
            .expect("digest lock")
            .insert(next / CHUNK, digest.take());
    }
    read
}

/// What tells two images apart: the dataset and the image's id in it.
fn image_key(dataset: &str, image_id: &str) -> String {
    format!("{dataset}\u{0}{image_id}")
}

/// Chunk digests, from the reader (which sees members in order, as the source gives
/// them) to the collector (which commits the chunks).
type Digests = Arc<Mutex<BTreeMap<u64, String>>>;

/// The digest of chunk `k`, once the reader has passed its last member.
fn take_digest(digests: &Digests, k: u64) -> String {
    digests
        .lock()
        .expect("digest lock")
        .remove(&k)
        .unwrap_or_default()
}

/// The compressed bytes queued for the workers at most (a member larger than this
/// waits until the queue is empty): memory stays bounded whatever the members' sizes.
const QUEUE_BYTES: u64 = 64 << 20;

/// Bytes of PNG data between the reader and the workers.
struct Budget {
    used: Mutex<u64>,
    freed: std::sync::Condvar,
    cap: u64,
}

impl Budget {
    fn new(cap: u64) -> Budget {
        Budget {
            used: Mutex::new(0),
            freed: std::sync::Condvar::new(),
            cap,
        }
    }

    /// Waits until `n` more bytes fit (or nothing is queued), then counts them.
    fn take(&self, n: u64) {
        let mut used = self.used.lock().expect("budget lock");
        while *used > 0 && *used + n > self.cap {
            used = self.freed.wait(used).expect("budget lock");
        }
        *used += n;
    }

    /// Returns `n` bytes to the budget.
    fn give(&self, n: u64) {
        let mut used = self.used.lock().expect("budget lock");
        *used = used.saturating_sub(n);
        self.freed.notify_all();
    }
}

/// A worker: decodes and measures PNG members; passes everything else through.
fn work(
    jobs: Arc<Mutex<Receiver<Vec<Member>>>>,
    results: SyncSender<Vec<(u64, Outcome)>>,
    budget: &Budget,
) {
    loop {
        let job = jobs.lock().expect("job queue lock").recv();
        let Ok(batch) = job else { return };
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut bytes = 0;
        for mut m in batch {
            let outcome = match std::mem::replace(&mut m.kind, Kind::Done) {
                Kind::Image(image) => {
                    bytes += image.len() as u64;
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        measure_one(&m, &image)
                    }))
                    .unwrap_or_else(|_| {
                        Outcome::Failed(error_row(&m, "the decoder panicked on this file".into()))
                    })
                }
                Kind::Failed(e) => Outcome::Failed(error_row(&m, e)),
                Kind::Skipped => Outcome::Skipped,
                // Members committed by an earlier run are never queued.
                Kind::Done => continue,
            };
            outcomes.push((m.ordinal, outcome));
        }
        budget.give(bytes);
        if results.send(outcomes).is_err() {
            return;
        }
    }
}

fn error_row(m: &Member, error: String) -> PixelError {
    let has_member = !m.path.is_empty();
    PixelError {
        dataset: m.dataset.to_string(),
        image_id: has_member.then(|| m.image_id()),
        source: m.source.clone(),
        member: m.path.clone(),
        image_index: has_member.then(|| m.image_index()),
        error,
    }
}

fn measure_one(m: &Member, bytes: &[u8]) -> Outcome {
    match decode(bytes) {
        Ok(g) => Outcome::Measured(Box::new(Measured {
            dataset: m.dataset,
            image_id: m.image_id(),
            image_index: m.image_index(),
            source: format!("{}:{}", m.source, m.path),
            archive_end: m.source.len(),
            format: g.format.name(),
            file_bytes: bytes.len() as i64,
            width: g.width as i32,
            height: g.height as i32,
            bit_depth: g.bit_depth as i8,
            bits_stored: g.bits_stored as i8,
            color_type: g.color_type,
            photometric: g.dicom.as_ref().map(|d| d.photometric.clone()),
            stats: stats::compute(
                &g.pixels,
                g.width as usize,
                g.height as usize,
                g.bits_stored,
            ),
            dicom: g.dicom,
        })),
        Err(e) => Outcome::Failed(error_row(m, e)),
    }
}

/// The collector: restores member order and commits a chunk every [`CHUNK`] members.
#[allow(clippy::too_many_arguments)]
fn collect(
    results: Receiver<Vec<(u64, Outcome)>>,
    cache: &Path,
    digests: &Digests,
    first_chunk: u64,
    run: &mut PixelRun,
    seen: &mut Seen,
    bytes_read: &AtomicU64,
    progress: &dyn Progress,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<(u64, Vec<Measured>, ChunkInfo)> {
    let mut pending: BTreeMap<u64, Outcome> = BTreeMap::new();
    let mut next = first_chunk * CHUNK;
    let mut chunk = first_chunk;
    let mut rows: Vec<Measured> = Vec::new();
    let mut info = ChunkInfo::default();
    let mut last_update = Instant::now();
    // Fault injection for the resume tests: fail after committing this many chunks.
    let fail_after: Option<u64> = std::env::var("CXR_TEST_FAIL_AFTER_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok());
    for (ordinal, outcome) in results.into_iter().flatten() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Query("pixel run stopped: the ingest failed".into()));
        }
        pending.insert(ordinal, outcome);
        while let Some(outcome) = pending.remove(&next) {
            match outcome {
                Outcome::Measured(row) => {
                    let key = image_key(row.dataset, &row.image_id);
                    info.names.push(seen_entry(key, &row.source));
                    rows.push(*row);
                }
                Outcome::Failed(e) => {
                    if let Some(id) = &e.image_id {
                        let key = image_key(&e.dataset, id);
                        info.names
                            .push(seen_entry(key, &format!("{}:{}", e.source, e.member)));
                    }
                    info.errors.push(e);
                }
                Outcome::Skipped => info.skipped += 1,
            }
            info.members += 1;
            next += 1;
            if info.members == CHUNK {
                // The reader digested this chunk's last member before sending it.
                info.digest = take_digest(digests, chunk);
                commit_chunk(cache, chunk, &mut rows, &mut info, run, seen)?;
                chunk += 1;
                if fail_after.is_some_and(|n| chunk - first_chunk >= n) {
                    return Err(Error::Query(format!(
                        "stopped after {} chunks (CXR_TEST_FAIL_AFTER_CHUNKS)",
                        chunk - first_chunk
                    )));
                }
            }
        }
        if last_update.elapsed().as_millis() >= 200 {
            progress.update(
                run.measured + rows.len() as u64,
                bytes_read.load(Ordering::Relaxed),
            );
            last_update = Instant::now();
        }
    }
    if let Some(gap) = pending.keys().next() {
        return Err(Error::Query(format!(
            "pixel run lost member {next} (next received: {gap}); nothing after it was committed"
        )));
    }
    // The last, partial chunk (possibly empty) marks the end of the inputs: the
    // caller commits it once the reader has finished without error.
    Ok((chunk, rows, info))
}

fn commit_chunk(
    cache: &Path,
    k: u64,
    rows: &mut Vec<Measured>,
    info: &mut ChunkInfo,
    run: &mut PixelRun,
    seen: &mut Seen,
) -> Result<()> {
    let (pq, js) = chunk_paths(cache, k);
    parquet::write(
        &pq,
        &stats_schema(),
        &[stats_batch(rows)?],
        &WriteOptions::unique_ids(),
    )?;
    parquet::write(
        &dicom_chunk_path(&pq),
        &dicom::headers_schema(),
        &[dicom::headers_batch(rows)?],
        &WriteOptions::unique_ids(),
    )?;
    let done = std::mem::take(info);
    crate::warehouse::write_atomic(
        &js,
        &serde_json::to_vec(&done).expect("chunk info serialises"),
    )?;
    for r in rows.drain(..) {
        let (archive, member) = (&r.source[..r.archive_end], &r.source[r.archive_end + 1..]);
        note_measured(run, r.dataset, &r.image_id, archive, member);
    }
    note_chunk(run, seen, &pq, done.skipped, done.errors, done.names);
    Ok(())
}
