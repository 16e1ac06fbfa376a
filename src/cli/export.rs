//! `cxr export`: Parquet for downstream tools — training manifests with a fixed
//! `targets` vector, hive-partitioned datasets, the whole warehouse as plain files —
//! and `cxr inspect`, which reads back what a file says about itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, RecordBatch,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;

use crate::cli::{AnalysisArgs, WarehouseArg};
use crate::error::{Error, IoContext, Result};
use crate::findings::{FINDINGS, column_name};
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr export`.
#[derive(Debug, Args)]
pub struct ExportCmd {
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// A query returning image_index that selects the images (instead of cohort flags).
    #[arg(long = "sql", value_name = "QUERY")]
    pub query: Option<String>,
    /// Adds a `path` column: DIR joined with the image file name.
    #[arg(long, value_name = "DIR")]
    pub image_root: Option<String>,
    /// Adds the pixel statistics columns.
    #[arg(long)]
    pub with_pixels: bool,
    /// Hive-style directories by this column (`split=test/part-0.parquet`).
    #[arg(long, value_name = "COL")]
    pub partition_by: Option<String>,
    /// zstd, zstd(N), snappy or none.
    #[arg(long, default_value = "zstd(3)")]
    pub compression: String,
    /// Rows per row group.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub row_group_size: usize,
    /// Sort the rows by this column (default: patient_id, follow_up).
    #[arg(long, value_name = "COL")]
    pub sort_by: Option<String>,
    /// Export every warehouse table as plain Parquet into DIR instead.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["query", "partition_by"])]
    pub tables: Option<PathBuf>,
}

/// Key-value metadata keys written into every exported file.
pub mod keys {
    /// JSON array of the 14 findings, in `targets` order.
    pub const TARGETS: &str = "cxr.targets";
    /// The SQL that produced the rows.
    pub const QUERY: &str = "cxr.query";
    /// cxr's version.
    pub const VERSION: &str = "cxr.version";
    /// SHA-256 of the warehouse's manifest.json.
    pub const MANIFEST: &str = "cxr.manifest_sha256";
    /// Export time.
    pub const CREATED: &str = "cxr.created";
}

fn parse_compression(s: &str) -> Result<Compression> {
    let lower = s.trim().to_ascii_lowercase();
    let bad = || {
        Error::Usage(format!(
            "--compression `{s}`: expected zstd, zstd(N), snappy or none"
        ))
    };
    Ok(match lower.as_str() {
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        "snappy" => Compression::SNAPPY,
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        _ => {
            let level = lower
                .strip_prefix("zstd(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.parse::<i32>().ok())
                .ok_or_else(bad)?;
            Compression::ZSTD(ZstdLevel::try_new(level).map_err(|_| bad())?)
        }
    })
}

fn ident(col: &str) -> Result<String> {
    if col.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !col.is_empty() {
        Ok(col.to_string())
    } else {
        Err(Error::Usage(format!("`{col}` is not a column name")))
    }
}

impl ExportCmd {
    /// The SQL of the export: the manifest columns (plus options) for the cohort.
    fn sql(&self, cohort: &str) -> Result<String> {
        let selection = match &self.query {
            Some(q) => format!(
                "SELECT i.* FROM images i WHERE i.image_index IN (SELECT image_index FROM ({}) AS q)",
                q.trim().trim_end_matches(';')
            ),
            None => cohort.to_string(),
        };
        let mut cols = vec![
            "c.image_index",
            "c.patient_id",
            "c.follow_up",
            "c.age",
            "c.sex",
            "c.view_position",
            "c.split",
            "c.labels",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        cols.extend(
            FINDINGS
                .iter()
                .map(|f| format!("c.{} AS \"target.{f}\"", column_name(f))),
        );
        if let Some(root) = &self.image_root {
            let root = root.trim_end_matches('/').replace('\'', "''");
            cols.push(format!("'{root}/' || c.image_index AS path"));
        }
        let join = if self.with_pixels {
            cols.push("p.* EXCLUDE (image_index)".into());
            "\nLEFT JOIN pixel_stats p ON p.image_index = c.image_index"
        } else {
            ""
        };
        let order = match &self.sort_by {
            Some(col) => ident(col)?,
            None => "patient_id, follow_up, image_index".into(),
        };
        Ok(format!(
            "WITH c AS (\n{selection}\n)\nSELECT {}\nFROM c{join}\nORDER BY {order}",
            cols.join(", ")
        ))
    }
}

/// Replaces the 14 `target.*` boolean columns by one `targets` FixedSizeList(14, Float32).
fn with_targets(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let first = schema
        .index_of(&format!("target.{}", FINDINGS[0]))
        .map_err(|_| Error::Query("export query lost its target columns".into()))?;
    let n = batch.num_rows();
    let mut values = Vec::with_capacity(n * 14);
    let bools: Vec<&BooleanArray> = (0..14)
        .map(|k| {
            batch
                .column(first + k)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("finding columns are Boolean")
        })
        .collect();
    for r in 0..n {
        for b in &bools {
            values.push(if b.is_valid(r) && b.value(r) {
                1.0f32
            } else {
                0.0
            });
        }
    }
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let targets =
        FixedSizeListArray::try_new(item.clone(), 14, Arc::new(Float32Array::from(values)), None)?;
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i == first {
            fields.push(Field::new(
                "targets",
                DataType::FixedSizeList(item.clone(), 14),
                false,
            ));
            cols.push(Arc::new(targets.clone()));
        }
        if i >= first && i < first + 14 {
            continue;
        }
        // Plain Utf8 and List rather than view and large types: what every reader,
        // old pyarrow and Spark included, expects.
        let plain = plain_type(f.data_type());
        fields.push(f.as_ref().clone().with_data_type(plain.clone()));
        cols.push(datafusion::arrow::compute::cast(batch.column(i), &plain)?);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Utf8View/LargeUtf8 → Utf8 and LargeList → List, recursively.
fn plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::List(f) | DataType::LargeList(f) => DataType::List(Arc::new(Field::new(
            "item",
            plain_type(f.data_type()),
            f.is_nullable(),
        ))),
        other => other.clone(),
    }
}

/// Writes one Parquet file with the provenance metadata.
fn write_file(path: &Path, batch: &RecordBatch, props: WriterProperties) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("{}: cannot create", dir.display()))?;
    }
    crate::pixels::run::write_with(path, batch.schema(), std::slice::from_ref(batch), props)
}

fn props(cmd: &ExportCmd, meta: &[KeyValue]) -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(parse_compression(&cmd.compression)?)
        .set_max_row_group_row_count(Some(cmd.row_group_size.max(1)))
        .set_key_value_metadata(Some(meta.to_vec()))
        .build())
}

/// Runs `cxr export`.
pub async fn run(cmd: ExportCmd) -> Result<()> {
    if let Some(dir) = &cmd.tables {
        return export_tables(&cmd.common.warehouse, dir);
    }
    let out = cmd
        .common
        .output
        .out
        .clone()
        .ok_or_else(|| Error::Usage("cxr export needs --out FILE.parquet or DIR".into()))?;
    let wh = Warehouse::open(&cmd.common.warehouse.path(), Register::All).await?;
    let avail = crate::cohort::Available::of(&wh)?;
    if cmd.with_pixels && !avail.pixel_stats {
        return Err(Error::Usage(
            "--with-pixels: this warehouse has no pixel statistics".into(),
        ));
    }
    let sql = cmd.sql(&cmd.common.cohort.images_sql(avail)?)?;
    if cmd.common.show_sql {
        println!("{sql};");
        return Ok(());
    }
    let mut frames = wh
        .plan(&sql, false, &cmd.common.cohort.default_params()?)
        .await?;
    let df = frames
        .pop()
        .ok_or_else(|| Error::Query("no statement".into()))?;
    let (schema, batches) = crate::sql::collect(df).await?;
    let batch = concat_batches(&schema, &batches)?;
    let batch = with_targets(&batch)?;
    let manifest_hash = {
        use sha2::{Digest, Sha256};
        let bytes =
            std::fs::read(wh.dir.join(crate::ingest::warehouse::MANIFEST)).unwrap_or_default();
        crate::ingest::warehouse::hex(&Sha256::digest(&bytes))
    };
    let meta = vec![
        KeyValue::new(
            keys::TARGETS.into(),
            serde_json::to_string(&FINDINGS).expect("names serialise"),
        ),
        KeyValue::new(keys::QUERY.into(), sql.clone()),
        KeyValue::new(keys::VERSION.into(), env!("CARGO_PKG_VERSION").to_string()),
        KeyValue::new(keys::MANIFEST.into(), manifest_hash),
        KeyValue::new(
            keys::CREATED.into(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
    ];
    // Also in the Arrow schema's metadata, where pyarrow and pandas look first.
    let schema_meta: std::collections::HashMap<String, String> = meta
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(batch.schema().as_ref().clone().with_metadata(schema_meta)),
        batch.columns().to_vec(),
    )?;
    let props = props(&cmd, &meta)?;
    let files = match &cmd.partition_by {
        None => {
            let file = if out.extension().is_some_and(|e| e == "parquet") {
                out.clone()
            } else {
                out.join("part-0.parquet")
            };
            write_file(&file, &batch, props)?;
            1
        }
        Some(col) => write_partitioned(&out, &batch, &ident(col)?, props)?,
    };
    eprintln!(
        "exported {} rows to {} ({files} file{})",
        crate::output::thousands(batch.num_rows() as u64),
        out.display(),
        if files == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Hive-style partitions: `<out>/<col>=<value>/part-0.parquet`, the column itself
/// left out of the files (readers take it from the path).
fn write_partitioned(
    out: &Path,
    batch: &RecordBatch,
    col: &str,
    props: WriterProperties,
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
    let fmt = ArrayFormatter::try_new(
        values.as_ref(),
        &FormatOptions::default().with_null("__HIVE_DEFAULT_PARTITION__"),
    )?;
    let mut groups: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for r in 0..batch.num_rows() {
        let key = fmt.value(r).to_string();
        groups
            .entry(key)
            .or_insert_with(|| vec![false; batch.num_rows()])[r] = true;
    }
    let mut keep: Vec<usize> = (0..batch.num_columns()).collect();
    keep.remove(idx);
    let projected = batch.project(&keep)?;
    let mut used = std::collections::BTreeSet::new();
    for (value, mask) in &groups {
        let part = filter_record_batch(&projected, &BooleanArray::from(mask.clone()))?;
        let safe: String = value
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if !used.insert(safe.clone()) {
            return Err(Error::Usage(format!(
                "--partition-by {col}: values such as `{value}` give the same directory name `{safe}`; partition by another column"
            )));
        }
        write_file(
            &out.join(format!("{col}={safe}")).join("part-0.parquet"),
            &part,
            props.clone(),
        )?;
    }
    Ok(groups.len())
}

/// Copies every warehouse table to `dir` as plain Parquet, with the manifest.
fn export_tables(warehouse: &WarehouseArg, dir: &Path) -> Result<()> {
    let wh = warehouse.path();
    crate::ingest::warehouse::Manifest::load(&wh)?;
    std::fs::create_dir_all(dir).ctx(|| format!("{}: cannot create", dir.display()))?;
    let mut n = 0;
    for (name, path) in crate::sql::stored_tables(&wh)? {
        if path.is_dir() {
            copy_dir(&path, &dir.join(&name))?;
        } else {
            std::fs::copy(&path, dir.join(format!("{name}.parquet")))
                .ctx(|| format!("{}: cannot copy", path.display()))?;
        }
        n += 1;
    }
    std::fs::copy(wh.join("manifest.json"), dir.join("manifest.json"))
        .ctx(|| "copying manifest.json".into())?;
    eprintln!("exported {n} tables to {}", dir.display());
    Ok(())
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).ctx(|| format!("{}: cannot create", to.display()))?;
    for e in std::fs::read_dir(from)
        .ctx(|| format!("{}: cannot list", from.display()))?
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()))?;
        } else {
            std::fs::copy(&p, to.join(e.file_name()))
                .ctx(|| format!("{}: cannot copy", p.display()))?;
        }
    }
    Ok(())
}

/// Arguments of `cxr inspect`.
#[derive(Debug, Args)]
pub struct InspectCmd {
    /// A Parquet file, or a directory of them.
    pub path: PathBuf,
}

/// Runs `cxr inspect`: schema, row groups and key-value metadata of each file.
pub fn inspect(cmd: InspectCmd) -> Result<()> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let files = parquet_files(&cmd.path);
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no Parquet files",
            cmd.path.display()
        )));
    }
    for f in files {
        let file = std::fs::File::open(&f).ctx(|| format!("{}: cannot open", f.display()))?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| Error::input(&f, format!("not a Parquet file: {e}")))?;
        let meta = reader.metadata();
        let fm = meta.file_metadata();
        println!("{}", f.display());
        println!(
            "  rows: {}  row groups: {}  created by: {}",
            fm.num_rows(),
            meta.num_row_groups(),
            fm.created_by().unwrap_or("?")
        );
        let arrow_schema = datafusion::parquet::arrow::parquet_to_arrow_schema(
            fm.schema_descr(),
            fm.key_value_metadata(),
        )?;
        println!("  schema:");
        for field in arrow_schema.fields() {
            println!(
                "    {}: {}{}",
                field.name(),
                field.data_type(),
                if field.is_nullable() { "" } else { " not null" }
            );
        }
        println!("  row groups:");
        for (i, rg) in meta.row_groups().iter().enumerate() {
            let codec = rg
                .columns()
                .first()
                .map(|c| format!("{:?}", c.compression()))
                .unwrap_or_default();
            println!(
                "    {i}: {} rows, {} bytes compressed ({codec})",
                rg.num_rows(),
                rg.compressed_size()
            );
        }
        println!("  metadata:");
        for kv in fm.key_value_metadata().into_iter().flatten() {
            if kv.key == "ARROW:schema" {
                continue;
            }
            let v = kv.value.clone().unwrap_or_default();
            println!("    {}: {}", kv.key, v.replace('\n', "\n      "));
        }
    }
    Ok(())
}

fn parquet_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
