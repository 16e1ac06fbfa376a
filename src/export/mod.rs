//! Exports for downstream tools: training manifests with a fixed `targets` vector,
//! hive-partitioned datasets, and the warehouse's tables as plain Parquet files.
//! Every output appears whole or not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::basic::Compression;
use datafusion::scalar::ScalarValue;

use crate::error::{Error, IoContext, Result};
use crate::sql::Warehouse;
use crate::warehouse::parquet::{self, WriteOptions};
use crate::warehouse::{Snapshot, refuse_inside, resolve};

/// Key-value metadata keys written into every exported file.
pub mod keys {
    /// JSON array of the findings, in `targets` order (NIH's 14, or the 18 across
    /// datasets).
    pub const TARGETS: &str = "cxr.targets";
    /// The SQL that produced the rows.
    pub const QUERY: &str = "cxr.query";
    /// cxr's version.
    pub const VERSION: &str = "cxr.version";
    /// SHA-256 of the warehouse's manifest.json.
    pub const MANIFEST: &str = "cxr.manifest_sha256";
    /// Export time.
    pub const CREATED: &str = "cxr.created";
    /// The codec and level asked for (Parquet itself records no level).
    pub const COMPRESSION: &str = "cxr.compression";
}

pub mod manifest;

pub use manifest::{Manifest, ident};

/// How an export is written.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Hive partitions by this column.
    pub partition_by: Option<String>,
    /// The codec.
    pub compression: Compression,
    /// Rows per row group.
    pub row_group_size: usize,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Also one Float32 column per finding, named as the finding, beside `targets`.
    pub wide_targets: bool,
}

impl Spec {
    /// How the export's files are written, with `meta` as key-value metadata.
    pub fn options(&self, meta: Vec<(String, String)>) -> WriteOptions {
        WriteOptions {
            compression: self.compression,
            row_group_rows: Some(self.row_group_size),
            metadata: meta,
            ..Default::default()
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Rows written.
    pub rows: u64,
    /// Files written.
    pub files: usize,
}

/// The manifest's rows as the export query computes them, batch by batch, each
/// with its targets (the findings of NIH, or across datasets the 18 of
/// docs/DATASETS.md): memory holds a batch, not the manifest.
pub struct ManifestRows {
    stream: datafusion::execution::SendableRecordBatchStream,
    targets: Vec<&'static str>,
    wide: bool,
    /// The schema of every batch [`ManifestRows::next`] gives.
    pub schema: SchemaRef,
}

impl ManifestRows {
    /// Starts the export query.
    pub async fn start(
        wh: &Warehouse,
        spec: &Spec,
        manifest: &Manifest,
        sql: &str,
        params: &[(String, ScalarValue)],
    ) -> Result<ManifestRows> {
        let stream = wh.stream(sql, params).await?;
        let targets = manifest.targets();
        let empty = RecordBatch::new_empty(stream.schema());
        let schema = manifest::with_targets(&empty, &targets, spec.wide_targets)?.schema();
        Ok(ManifestRows {
            stream,
            targets,
            wide: spec.wide_targets,
            schema,
        })
    }

    /// The next batch of rows, or None after the last.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        use futures::StreamExt;
        let batch = self.stream.next().await?;
        Some(
            batch
                .map_err(Error::from)
                .and_then(|b| manifest::with_targets(&b, &self.targets, self.wide)),
        )
    }

    /// Every row in one batch (a partitioned export groups them by value).
    async fn collect(mut self) -> Result<RecordBatch> {
        let mut batches = Vec::new();
        while let Some(b) = self.next().await {
            batches.push(b?);
        }
        Ok(datafusion::arrow::compute::concat_batches(
            &self.schema,
            &batches,
        )?)
    }

    /// Writes every row into one Parquet file, batch by batch; returns the rows.
    async fn write_parquet(mut self, path: &Path, opts: &WriteOptions) -> Result<u64> {
        let mut sink = parquet::ParquetSink::create(path, &self.schema, opts)?;
        while let Some(b) = self.next().await {
            sink.write(&b?)?;
        }
        sink.finish()
    }
}

/// Runs the export query and writes `out` (a file, or a directory of partitions).
pub async fn run(
    wh: &Warehouse,
    spec: &Spec,
    sql: &str,
    params: &[(String, ScalarValue)],
    out: &Path,
    manifest: &Manifest,
) -> Result<Summary> {
    refuse_inside(&wh.snapshot.root, out, "--out")?;
    check_output(out, spec.overwrite)?;
    let t = std::time::Instant::now();
    let rows = ManifestRows::start(wh, spec, manifest, sql, params).await?;
    let mut meta = provenance(wh, &manifest.scope);
    meta.extend(vec![
        (
            keys::TARGETS.to_string(),
            serde_json::to_string(&manifest.targets()).expect("names serialise"),
        ),
        (keys::QUERY.to_string(), sql.to_string()),
        (
            keys::VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            keys::MANIFEST.to_string(),
            wh.snapshot.manifest_sha256.clone(),
        ),
        (
            keys::CREATED.to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        (
            keys::COMPRESSION.to_string(),
            crate::warehouse::parquet::compression_name(spec.compression),
        ),
    ]);
    let opts = spec.options(meta);
    let summary = match &spec.partition_by {
        None if is_parquet_name(out) => Summary {
            rows: rows.write_parquet(out, &opts).await?,
            files: 1,
        },
        None => {
            let folder = NewFolder::create(out)?;
            let written = rows
                .write_parquet(&folder.path().join("part-0.parquet"), &opts)
                .await?;
            folder.commit(spec.overwrite)?;
            Summary {
                rows: written,
                files: 1,
            }
        }
        Some(col) => {
            let col = ident(col)?;
            let batch = rows.collect().await?;
            let files = in_new_dir(out, spec.overwrite, |dir| {
                write_partitioned(dir, &batch, &col, &opts)
            })?;
            Summary {
                rows: batch.num_rows() as u64,
                files,
            }
        }
    };
    // Rows are computed and written as they stream, so the two phases are one.
    crate::trace("run and write", t);
    Ok(summary)
}

fn is_parquet_name(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// What a manifest records beside the common keys: the label map it was built
/// with, the uncertain-label policy, the sources and the datasets.
fn provenance(wh: &Warehouse, scope: &crate::cohort::across::Scope) -> Vec<(String, String)> {
    let map = wh
        .snapshot
        .manifest
        .inputs
        .iter()
        .find(|i| i.role == "label_map")
        .map(|i| format!("{} (sha256 {})", i.path, i.sha256))
        .unwrap_or_else(|| "unknown".into());
    let sources = if scope.sources.is_empty() {
        format!("every source of each dataset; NIH: {}", scope.nih_primary)
    } else {
        scope.sources.join(", ")
    };
    let datasets = if scope.datasets.is_empty() {
        "every dataset of the warehouse".to_string()
    } else {
        scope.datasets.join(", ")
    };
    vec![
        ("cxr.label_map".to_string(), map),
        (
            "cxr.uncertain".to_string(),
            scope.uncertain.name().to_string(),
        ),
        ("cxr.sources".to_string(), sources),
        ("cxr.datasets".to_string(), datasets),
    ]
}

/// The file cxr writes into every folder it exports. `--overwrite` replaces only a
/// folder that has it and holds nothing but what cxr writes there, so a user's
/// folder (their notes, a warehouse, the current directory) is never deleted.
const MARKER: &str = crate::warehouse::EXPORT_MARKER;

/// An output that exists is replaced only with `--overwrite`, and a folder only if
/// cxr wrote it; an output file's folder must exist.
fn check_output(out: &Path, overwrite: bool) -> Result<()> {
    crate::warehouse::files::check_writable(out)?;
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::io(
                format!("{}: cannot look at it", out.display()),
                e,
            ));
        }
    };
    if meta.file_type().is_symlink() {
        return Err(Error::Usage(format!(
            "{}: is a symbolic link; name the folder or file itself",
            out.display()
        )));
    }
    if meta.is_dir() {
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if empty {
            return Ok(());
        }
        if !overwrite {
            return Err(Error::Usage(format!(
                "{}: exists and is not empty; pass --overwrite to replace it",
                out.display()
            )));
        }
        return replaceable(out);
    }
    if !is_parquet_name(out) {
        return Err(Error::Usage(format!(
            "{}: exists and is not a directory; a folder output never replaces a file",
            out.display()
        )));
    }
    crate::warehouse::files::refuse_special(out)?;
    if !overwrite {
        return Err(Error::Usage(format!(
            "{}: exists; pass --overwrite to replace it",
            out.display()
        )));
    }
    Ok(())
}

/// Whether `dir` is a folder that an earlier export wrote: its marker lists every
/// file in it (a file the user added, even a Parquet file, keeps it from being
/// replaced), and it is not where the user stands.
fn replaceable(dir: &Path) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::Usage(format!(
            "{}: --overwrite replaces only a folder that cxr exported, and {why}; remove it yourself or choose another folder",
            dir.display()
        )))
    };
    let Ok(marker) = std::fs::read_to_string(dir.join(MARKER)) else {
        return refuse(format!("it has no {MARKER} file"));
    };
    let Some(listed) = written_files(&marker) else {
        return refuse(format!(
            "its {MARKER} file (from an older cxr) does not list what it wrote"
        ));
    };
    if let (Some(d), Ok(cwd)) = (resolve(dir), std::env::current_dir())
        && cwd.starts_with(&d)
    {
        return refuse("it is (or holds) the current directory".into());
    }
    for (path, is_file) in files_below(dir)? {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy();
        if !is_file || (rel != MARKER && !listed.contains(rel.as_ref())) {
            return refuse(format!(
                "it holds {}, which cxr did not write",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The first line of an export's marker; the lines after it name the files written.
const MARKER_HEADER: &str = "written by cxr export; the files it wrote:";

/// The files an export's marker lists, or None for a marker without a list.
fn written_files(marker: &str) -> Option<std::collections::HashSet<&str>> {
    let mut lines = marker.lines();
    (lines.next() == Some(MARKER_HEADER)).then(|| lines.filter(|l| !l.is_empty()).collect())
}

/// Every entry below `dir` that is not a folder, with whether it is a regular file.
fn files_below(dir: &Path) -> Result<Vec<(PathBuf, bool)>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).ctx(|| format!("{}: cannot list", d.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            let kind = e
                .file_type()
                .ctx(|| format!("{}: cannot look at it", p.display()))?;
            if kind.is_dir() {
                stack.push(p);
            } else {
                found.push((p, kind.is_file()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Writes the marker into a finished export folder, listing every file in it.
fn write_marker(dir: &Path) -> Result<()> {
    let mut text = format!("{MARKER_HEADER}\n");
    for (path, _) in files_below(dir)? {
        text.push_str(&path.strip_prefix(dir).unwrap_or(&path).to_string_lossy());
        text.push('\n');
    }
    crate::warehouse::write_atomic(&dir.join(MARKER), text.as_bytes())
}

/// Builds a directory output in a hidden sibling and swaps it in whole: a failed or
/// killed export leaves the previous output (or nothing) in place.
fn in_new_dir(
    out: &Path,
    overwrite: bool,
    fill: impl FnOnce(&Path) -> Result<usize>,
) -> Result<usize> {
    let folder = NewFolder::create(out)?;
    let n = fill(folder.path())?;
    folder.commit(overwrite)?;
    Ok(n)
}

/// A directory output being filled in a hidden sibling of its place; removed if
/// dropped before [`NewFolder::commit`].
struct NewFolder {
    tmp: PathBuf,
    out: PathBuf,
    committed: bool,
}

impl NewFolder {
    fn create(out: &Path) -> Result<NewFolder> {
        let out = resolve(out).unwrap_or_else(|| out.to_path_buf());
        // The folder is made, not the folders on the way to it.
        crate::warehouse::files::check_folder_exists(&out)?;
        crate::warehouse::files::sweep_stale(&out);
        let tmp = crate::warehouse::files::temp_beside(&out);
        std::fs::create_dir(&tmp).ctx(|| format!("{}: cannot create", tmp.display()))?;
        Ok(NewFolder {
            tmp,
            out,
            committed: false,
        })
    }

    /// Where the files go until the folder is committed.
    fn path(&self) -> &Path {
        &self.tmp
    }

    /// Marks the folder as cxr's and swaps it into place.
    fn commit(mut self, overwrite: bool) -> Result<()> {
        write_marker(&self.tmp)?;
        swap_into_place(&self.tmp, &self.out, overwrite)?;
        self.committed = true;
        crate::warehouse::files::sync_parent(&self.out);
        Ok(())
    }
}

impl Drop for NewFolder {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Moves the finished folder `tmp` to `out`. An existing `out` (checked replaceable
/// before the work) is exchanged with it in one rename, so no moment is without
/// either, then removed; without `--overwrite`, only a missing or empty `out` is
/// replaced (rename fails on a folder that is not empty).
fn swap_into_place(tmp: &Path, out: &Path, overwrite: bool) -> Result<()> {
    let exists = std::fs::symlink_metadata(out).is_ok();
    if !exists || !overwrite {
        return std::fs::rename(tmp, out).map_err(|e| match e.kind() {
            std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists => {
                Error::Usage(format!(
                    "{}: appeared while exporting; pass --overwrite to replace it",
                    out.display()
                ))
            }
            _ => Error::io(format!("{}: cannot move into place", out.display()), e),
        });
    }
    // Checked again: the folder may have changed while the export ran.
    replaceable(out).or_else(|e| {
        if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none()) {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    crate::warehouse::files::exchange(tmp, out)
        .ctx(|| format!("{}: cannot swap the new output into place", out.display()))?;
    // `tmp` now holds the previous output.
    let _ = std::fs::remove_dir_all(tmp);
    Ok(())
}

/// Whether `value` can stand in a partition folder's name as it is: letters, digits,
/// `-`, `_` and `.` (not `.` or `..` alone).
pub fn is_folder_value(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Hive-style partitions: `<dir>/<col>=<value>/part-0.parquet`, the column itself
/// left out of the files (readers take it from the path).
fn write_partitioned(
    dir: &Path,
    batch: &RecordBatch,
    col: &str,
    opts: &WriteOptions,
) -> Result<usize> {
    let idx = batch.schema().index_of(col).map_err(|_| {
        Error::Usage(format!(
            "--partition-by `{col}`: no such column in the export"
        ))
    })?;
    let values = batch.column(idx);
    if matches!(
        values.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    ) {
        return Err(Error::Usage(format!(
            "--partition-by `{col}`: cannot partition by a list column"
        )));
    }
    // A NULL has no folder name that every reader gives back as NULL (pyarrow cannot
    // read Hive's `__HIVE_DEFAULT_PARTITION__` beside other values): refused.
    if values.null_count() > 0 {
        return Err(Error::Usage(format!(
            "--partition-by {col}: {} of the {} rows have no {col} (NULL), which no folder name gives back; narrow the cohort first (e.g. --where \"{col} IS NOT NULL\"){}",
            values.null_count(),
            batch.num_rows(),
            if col == "split" {
                " or give every image a split (`cxr split ...`)"
            } else {
                ""
            }
        )));
    }
    let fmt = ArrayFormatter::try_new(values.as_ref(), &FormatOptions::default())?;
    let mut groups: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for r in 0..batch.num_rows() {
        groups
            .entry(fmt.value(r).to_string())
            .or_insert_with(|| vec![false; batch.num_rows()])[r] = true;
    }
    let mut keep: Vec<usize> = (0..batch.num_columns()).collect();
    keep.remove(idx);
    let projected = batch.project(&keep)?;
    // Each value is its folder's name as it is, so that readers give it back
    // unchanged: one that would need escaping is refused, not rewritten.
    if let Some(value) = groups.keys().find(|v| !is_folder_value(v)) {
        return Err(Error::Usage(format!(
            "--partition-by {col}: the value `{value}` cannot be a folder name that readers give back unchanged (letters, digits, `-`, `_` and `.` only, not `.` or `..`); partition by another column"
        )));
    }
    for (value, mask) in &groups {
        let part = filter_record_batch(&projected, &BooleanArray::from(mask.clone()))?;
        let sub = dir.join(format!("{col}={value}"));
        std::fs::create_dir_all(&sub).ctx(|| format!("{}: cannot create", sub.display()))?;
        parquet::write(
            &sub.join("part-0.parquet"),
            &part.schema(),
            std::slice::from_ref(&part),
            opts,
        )?;
    }
    Ok(groups.len())
}

/// Writes every table of the snapshot into `dir` as plain Parquet (view types made
/// plain, the data rewritten, not copied), with the manifest. Returns the tables.
pub fn tables(
    snapshot: &Snapshot,
    dir: &Path,
    overwrite: bool,
    opts: &WriteOptions,
) -> Result<usize> {
    refuse_inside(&snapshot.root, dir, "--tables")?;
    check_output(dir, overwrite)?;
    let tables = snapshot.tables()?;
    in_new_dir(dir, overwrite, |tmp| {
        for (name, path) in &tables {
            let files = if path.is_dir() {
                parquet::parquet_files(path)
            } else {
                vec![path.clone()]
            };
            for f in files {
                let rel = f.strip_prefix(&snapshot.data).unwrap_or(&f);
                let to = tmp.join(rel);
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p).ctx(|| format!("{}: cannot create", p.display()))?;
                }
                let (schema, batches) = parquet::read_with_schema(&f)?;
                parquet::write(&to, &schema, &batches, opts)?;
            }
            let _ = name;
        }
        let manifest =
            serde_json::to_string_pretty(&snapshot.manifest).expect("manifest serialises");
        crate::warehouse::write_atomic(&tmp.join("manifest.json"), (manifest + "\n").as_bytes())?;
        Ok(tables.len())
    })
}
