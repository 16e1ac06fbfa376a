//! The one Parquet writer and reader of cxr.
//!
//! Every file is written through [`ParquetSink`], which casts view and large types
//! to their plain forms first (`Utf8View` → `Utf8`, `LargeList` → `List`, ...):
//! DataFusion produces view types and pyarrow before 16 cannot read a file whose
//! embedded Arrow schema names them. Files appear only when complete.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;

use crate::error::{Error, IoContext, Result};
use crate::warehouse::files::AtomicFile;

/// How a Parquet file is written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The codec: ZSTD level 1 for the warehouse's own tables (level 3 took the
    /// ingest 8 % longer and made the warehouse no smaller); exports take theirs
    /// from `--compression`.
    pub compression: Compression,
    /// Rows per row group (None: the writer's default).
    pub row_group_rows: Option<usize>,
    /// Key-value metadata, written both into the Parquet footer and into the
    /// embedded Arrow schema (where pyarrow and pandas look first).
    pub metadata: Vec<(String, String)>,
    /// Columns written without a dictionary: ids that hardly repeat, where building
    /// a dictionary costs time and saves nothing.
    pub no_dictionary: Vec<&'static str>,
    /// Rows per data page (None: the writer's default, 20,000). Smaller pages let a
    /// query on a sorted column (one dataset, one patient) skip more of the file.
    pub page_rows: Option<usize>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::ZSTD(ZstdLevel::try_new(1).expect("a valid level")),
            row_group_rows: None,
            metadata: Vec::new(),
            no_dictionary: Vec::new(),
            page_rows: None,
        }
    }
}

impl WriteOptions {
    /// The defaults, with the warehouse's per-row id columns written without a
    /// dictionary.
    pub fn unique_ids() -> WriteOptions {
        WriteOptions {
            no_dictionary: UNIQUE_IDS.to_vec(),
            ..Default::default()
        }
    }

    fn properties(&self) -> WriterProperties {
        let mut b = WriterProperties::builder().set_compression(self.compression);
        if let Some(n) = self.row_group_rows {
            b = b.set_max_row_group_row_count(Some(n.max(1)));
        }
        if let Some(n) = self.page_rows {
            b = b.set_data_page_row_count_limit(n.max(1));
        }
        for c in &self.no_dictionary {
            b = b.set_column_dictionary_enabled(
                datafusion::parquet::schema::types::ColumnPath::from(*c),
                false,
            );
        }
        if !self.metadata.is_empty() {
            b = b.set_key_value_metadata(Some(
                self.metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect(),
            ));
        }
        b.build()
    }
}

/// Parses `zstd`, `zstd(N)`, `snappy` or `none`.
pub fn parse_compression(s: &str) -> Result<Compression> {
    let lower = s.trim().to_ascii_lowercase();
    let bad = || {
        Error::Usage(format!(
            "--compression `{s}`: expected zstd, zstd(N) with N in 1..=22, snappy or none"
        ))
    };
    Ok(match lower.as_str() {
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        "snappy" => Compression::SNAPPY,
        "zstd" => Compression::ZSTD(ZstdLevel::try_new(3).expect("a valid level")),
        _ => {
            let level = lower
                .strip_prefix("zstd(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.trim().parse::<i32>().ok())
                .ok_or_else(bad)?;
            Compression::ZSTD(ZstdLevel::try_new(level).map_err(|_| bad())?)
        }
    })
}

/// A compression as `--compression` spells it (`zstd(3)`, `snappy`, `none`).
pub fn compression_name(c: Compression) -> String {
    match c {
        Compression::UNCOMPRESSED => "none".into(),
        Compression::SNAPPY => "snappy".into(),
        Compression::ZSTD(level) => format!("zstd({})", level.compression_level()),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// The plain form of a type: what every Parquet reader, old pyarrow included, reads.
pub fn plain_type(t: &DataType) -> DataType {
    let item = |f: &Arc<Field>| Arc::new(plain_field(f));
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => DataType::List(item(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(item(f), *n),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| plain_field(f)).collect::<Fields>())
        }
        DataType::Dictionary(_, v) => plain_type(v),
        other => other.clone(),
    }
}

fn plain_field(f: &Field) -> Field {
    f.clone().with_data_type(plain_type(f.data_type()))
}

/// `schema` with every field in its plain form, metadata kept.
pub fn plain_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| plain_field(f))
            .collect::<Fields>(),
        schema.metadata().clone(),
    ))
}

/// Casts a batch to `schema` (its plain form).
fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(RecordBatch::try_new(
            schema.clone(),
            batch.columns().to_vec(),
        )?);
    }
    let cols = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// A Parquet file being written batch by batch; it appears at its path only when
/// [`ParquetSink::finish`] succeeds.
pub struct ParquetSink {
    writer: ArrowWriter<AtomicFile>,
    schema: SchemaRef,
    rows: u64,
    path: PathBuf,
}

/// A failed write of `path`, named (a full disk otherwise says only "No space left
/// on device"), keeping the I/O error's kind for the exit code.
fn write_error(path: &Path, e: ParquetError) -> Error {
    // Parquet's limit of 32,767 row groups a file, reached with a small
    // `--row-group-size`: the user's to change (exit 2).
    if let ParquetError::General(message) = &e
        && message.contains("row groups per file")
    {
        return Error::Usage(format!(
            "{}: {message}; give a larger --row-group-size",
            path.display()
        ));
    }
    let source = match e {
        ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => *io,
            Err(other) => std::io::Error::other(other),
        },
        other => std::io::Error::other(other),
    };
    Error::io(format!("{}: cannot write", path.display()), source)
}

impl ParquetSink {
    /// Starts a file whose batches have `schema` (cast to plain types on write).
    pub fn create(path: &Path, schema: &Schema, opts: &WriteOptions) -> Result<ParquetSink> {
        let mut meta: HashMap<String, String> = schema.metadata().clone();
        meta.extend(opts.metadata.iter().cloned());
        let plain = plain_schema(schema);
        let schema = Arc::new(plain.as_ref().clone().with_metadata(meta));
        let file = AtomicFile::create(path)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(opts.properties()))?;
        Ok(ParquetSink {
            writer,
            schema,
            rows: 0,
            path: path.to_path_buf(),
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        let batch = cast_batch(batch, &self.schema)?;
        self.writer
            .write(&batch)
            .map_err(|e| write_error(&self.path, e))?;
        Ok(())
    }

    /// Ends the row group being written (if it has rows): its pages leave memory
    /// for the file, and the rows after it start a row group of their own.
    pub fn end_row_group(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| write_error(&self.path, e))
    }

    /// Closes the file and moves it into place; returns the rows written.
    pub fn finish(self) -> Result<u64> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| write_error(&self.path, e))?;
        file.commit()?;
        Ok(self.rows)
    }
}

/// Writes `batches` (all of `schema`) as one Parquet file, atomically.
pub fn write(
    path: &Path,
    schema: &Schema,
    batches: &[RecordBatch],
    opts: &WriteOptions,
) -> Result<u64> {
    let mut sink = ParquetSink::create(path, schema, opts)?;
    for b in batches {
        sink.write(b)?;
    }
    sink.finish()
}

/// Writes one batch with the default options (a warehouse table).
pub fn write_table(path: &Path, batch: &RecordBatch) -> Result<u64> {
    write(
        path,
        &batch.schema(),
        std::slice::from_ref(batch),
        &WriteOptions::unique_ids(),
    )
}

/// Columns that name one image or file per row (or nearly: an image's hash): a
/// dictionary of them would be as large as the column, so the writer would build it
/// (hashing every value) only to give up on it.
const UNIQUE_IDS: [&str; 4] = ["image_index", "image_id", "source", "dhash"];

/// Reads every batch of a Parquet file.
pub fn read(path: &Path) -> Result<Vec<RecordBatch>> {
    Ok(read_with_schema(path)?.1)
}

/// Reads a Parquet file: its schema (known even when it has no rows) and batches.
pub fn read_with_schema(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = File::open(path).ctx(|| format!("{}: cannot open", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Every `.parquet` regular file below `path` (or `path` itself), sorted. Links,
/// FIFOs and devices are not followed or opened (a FIFO would block the reader).
pub fn parquet_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let p = e.path();
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file() && p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Checks a stored table before a query reads it: every file's footer decodes (a
/// damaged one, even one that would make the Arrow schema decoder panic, is an
/// error naming the file) and the rows add up to the manifest's count (a table
/// file emptied or cut short is not read as fewer rows).
pub fn check_table(path: &Path, rows: u64) -> Result<()> {
    let mut found = 0u64;
    for file in parquet_files(path) {
        found += footer_rows(&file)?;
    }
    if found != rows {
        return Err(Error::Warehouse(format!(
            "{}: holds {found} rows where the manifest says {rows}; the warehouse is damaged (run `cxr ingest` again)",
            path.display()
        )));
    }
    Ok(())
}

/// The row count of a Parquet file, from a footer checked to decode whole.
fn footer_rows(path: &Path) -> Result<u64> {
    Ok(describe(path)?.rows.max(0) as u64)
}

/// What a Parquet file says about itself.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// Rows in the file.
    pub rows: i64,
    /// The writer, as recorded.
    pub created_by: Option<String>,
    /// (name, Arrow type, nullable) of each column, as a reader sees them.
    pub fields: Vec<(String, DataType, bool)>,
    /// (rows, compressed bytes, codec name) per row group. Parquet records the codec
    /// but not its level.
    pub row_groups: Vec<(i64, i64, String)>,
    /// Key-value metadata, the embedded Arrow schema left out.
    pub metadata: Vec<(String, String)>,
}

/// Reads the footer of a Parquet file. A footer so damaged that a decoder panics
/// (one flipped byte in the embedded Arrow schema does) is an input error.
pub fn describe(path: &Path) -> Result<FileInfo> {
    std::panic::catch_unwind(|| read_footer(path)).unwrap_or_else(|_| {
        Err(Error::input(
            path,
            "a damaged Parquet footer (its schema cannot be decoded)",
        ))
    })
}

/// Why a file is not Parquet, in plain words: the parquet crate's own text names its
/// internals ("Parquet error: Invalid Parquet file. Corrupt footer").
fn not_parquet(e: &datafusion::parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    if text.contains("Corrupt footer") || text.contains("Invalid Parquet file") {
        return "not a Parquet file (it does not end with the PAR1 marker of a Parquet footer)"
            .into();
    }
    if text.contains("EOF") || text.contains("smaller than") || text.contains("size is") {
        return "not a Parquet file (too short to hold a Parquet footer)".into();
    }
    format!(
        "not a Parquet file ({})",
        text.trim_start_matches("Parquet error: ")
    )
}

fn read_footer(path: &Path) -> Result<FileInfo> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let file = File::open(path).ctx(|| format!("{}: cannot open", path.display()))?;
    let reader =
        SerializedFileReader::new(file).map_err(|e| Error::input(path, not_parquet(&e)))?;
    let meta = reader.metadata();
    let fm = meta.file_metadata();
    let schema = datafusion::parquet::arrow::parquet_to_arrow_schema(
        fm.schema_descr(),
        fm.key_value_metadata(),
    )
    .map_err(|e| {
        Error::input(
            path,
            format!("a Parquet schema that Arrow cannot read: {e}"),
        )
    })?;
    let codec = |c: Compression| match c {
        Compression::ZSTD(_) => "ZSTD".to_string(),
        Compression::GZIP(_) => "GZIP".to_string(),
        Compression::BROTLI(_) => "BROTLI".to_string(),
        other => format!("{other:?}"),
    };
    Ok(FileInfo {
        rows: fm.num_rows(),
        created_by: fm.created_by().map(str::to_string),
        fields: schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect(),
        row_groups: meta
            .row_groups()
            .iter()
            .map(|rg| {
                let c = rg
                    .columns()
                    .first()
                    .map(|c| codec(c.compression()))
                    .unwrap_or_default();
                (rg.num_rows(), rg.compressed_size(), c)
            })
            .collect(),
        metadata: fm
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter(|kv| kv.key != "ARROW:schema")
            .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ListBuilder, StringViewArray, StringViewBuilder};

    #[test]
    fn view_types_are_written_plain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut lists = ListBuilder::new(StringViewBuilder::new());
        lists.values().append_value("Effusion");
        lists.append(true);
        let names = StringViewArray::from(vec!["a"]);
        let schema = Schema::new(vec![
            Field::new("name", DataType::Utf8View, true),
            Field::new(
                "labels",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true))),
                true,
            ),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![Arc::new(names), Arc::new(lists.finish())],
        )
        .unwrap();
        assert_eq!(
            write(&path, &schema, &[batch], &WriteOptions::default()).unwrap(),
            1
        );
        let back = read(&path).unwrap();
        let s = back[0].schema();
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(
            s.field(1).data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
    }

    #[test]
    fn compression_names() {
        assert!(parse_compression("zstd(9)").is_ok());
        assert!(parse_compression("snappy").is_ok());
        assert!(parse_compression("zstd(99)").is_err());
        assert!(parse_compression("gzip").is_err());
    }
}
