//! Files named in a query (`SELECT * FROM 'out.parquet'`), checked and registered
//! before DataFusion plans the query: DataFusion's own lookup panicked on a damaged
//! Parquet footer, returned nothing for an empty file, and did not know `.ndjson`
//! (cxr's own output) or a JSON array (`--format json`).

use std::ops::ControlFlow;
use std::path::Path;

use datafusion::common::TableReference;
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::prelude::{JsonReadOptions, SessionContext};
use datafusion::sql::parser::{CopyToSource, Statement};
use datafusion::sql::sqlparser::ast::{ObjectName, visit_relations};

use crate::error::{Error, IoContext, Result};

/// Whether a name holds a character DataFusion reads as a wildcard (`*`, `?`, `[`):
/// an existing file of such a name is registered here, by its literal URL, or
/// DataFusion would look for the files its pattern matches.
fn has_wildcards(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

/// The `file://` URL of `path` (made absolute), every byte but letters, digits and
/// `/-._~` %-escaped: DataFusion reads a plain path's `[1]`, `*` or `?` as a
/// pattern, and a URL's path literally. A folder's URL ends in `/`.
pub fn literal_url(path: &Path) -> Result<String> {
    use std::os::unix::ffi::OsStrExt;
    let absolute =
        std::path::absolute(path).ctx(|| format!("{}: cannot resolve", path.display()))?;
    let mut url = String::from("file://");
    for &byte in absolute.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    if path.is_dir() && !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}

/// The endings of a CSV file's name cxr reads in a query, with the compression each
/// says (DataFusion reads the same ones).
const CSV_ENDINGS: [(&str, CompressionTypeVariant); 5] = [
    (".csv", CompressionTypeVariant::UNCOMPRESSED),
    (".csv.gz", CompressionTypeVariant::GZIP),
    (".csv.bz2", CompressionTypeVariant::BZIP2),
    (".csv.xz", CompressionTypeVariant::XZ),
    (".csv.zst", CompressionTypeVariant::ZSTD),
];

/// The ending and compression of a CSV file's name, if it is one.
fn csv_ending(name: &str) -> Option<(&'static str, FileCompressionType)> {
    let lower = name.to_ascii_lowercase();
    CSV_ENDINGS
        .iter()
        .find(|(ending, _)| lower.ends_with(ending))
        .map(|&(ending, variant)| (ending, FileCompressionType::from(variant)))
}

/// A CSV file (`.csv`, or compressed `.csv.gz`, ...) a query names, registered
/// under that name (a wildcard in it is a character), its quoted fields free to hold
/// line breaks. Column types are inferred here, by arrow's rules (DataFusion's own),
/// from the first 1,000 records read as one stream: DataFusion infers them chunk by
/// chunk, and a chunk that began inside a quoted line break failed the file. A
/// column empty in all of those (typed Null: every later value would be read as
/// NULL) sends the inference through the whole file; a column empty throughout is
/// text.
async fn register_csv(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    let (ending, compression) =
        csv_ending(name).unwrap_or((".csv", FileCompressionType::UNCOMPRESSED));
    let length = ending.len();
    // The extension as the name spells it (DataFusion compares it with the file's).
    let extension = name
        .get(name.len().saturating_sub(length)..)
        .unwrap_or(name);
    let schema = csv_schema(path, compression)?;
    let options = datafusion::prelude::CsvReadOptions::new()
        .file_extension(extension)
        .file_compression_type(compression)
        .newlines_in_values(true)
        .schema(&schema);
    ctx.register_csv(TableReference::bare(name), literal_url(path)?, options)
        .await
        .map_err(|e| Error::input(path, format!("not a readable CSV table: {e}")))
}

/// The column types of a CSV file (see [`register_csv`]).
fn csv_schema(
    path: &Path,
    compression: FileCompressionType,
) -> Result<datafusion::arrow::datatypes::Schema> {
    use datafusion::arrow::csv::reader::Format;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let infer = |records: Option<usize>| {
        Format::default()
            .with_header(true)
            .infer_schema(open_text(path, compression)?, records)
            .map(|(schema, _)| schema)
            .map_err(|e| Error::input(path, format!("not a readable CSV table: {e}")))
    };
    let has_null_type = |schema: &Schema| {
        schema
            .fields()
            .iter()
            .any(|f| f.data_type() == &DataType::Null)
    };
    let mut schema = infer(Some(1000))?;
    if has_null_type(&schema) {
        schema = infer(None)?;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => Field::new(f.name(), DataType::Utf8, true),
            _ => f.as_ref().clone(),
        })
        .collect();
    Ok(Schema::new(fields))
}

/// Whether a table name in a query is meant as a file: it has a folder or a data
/// file's extension (`'pa.parquet'`, `'data/x.csv.gz'`).
fn looks_like_a_file(name: &str) -> bool {
    const EXTENSIONS: [&str; 9] = [
        ".parquet", ".csv", ".json", ".ndjson", ".jsonl", ".gz", ".bz2", ".xz", ".zst",
    ];
    let lower = name.to_ascii_lowercase();
    name.contains('/') || EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// Checks every existing file a statement names as a table, and registers the JSON
/// ones under the name the query uses.
pub(super) async fn prepare(ctx: &SessionContext, statement: &Statement) -> Result<()> {
    for name in named(statement) {
        let path = Path::new(&name);
        if ctx.table_exist(TableReference::bare(name.as_str()))? {
            continue;
        }
        let a_file = std::fs::metadata(path).is_ok_and(|m| m.is_file());
        if !a_file && has_wildcards(&name) && extension(path) == "parquet" {
            register_glob(ctx, &name).await?;
            continue;
        }
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() && !m.is_dir() => {
                // Reading a FIFO or a device would block or never end.
                return Err(Error::input(
                    path,
                    "not a regular file (a pipe or a device); a table is read from a file",
                ));
            }
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                register_folder(ctx, &name, path).await?;
                continue;
            }
            Err(_)
                if looks_like_a_file(&name)
                    && !ctx.table_exist(TableReference::bare(name.as_str()))? =>
            {
                return Err(Error::input(
                    path,
                    "no such file (a name with a folder or a file extension is read as a file)",
                ));
            }
            Err(_) => continue,
        }
        let size = std::fs::metadata(path)
            .ctx(|| format!("{name}: cannot read"))?
            .len();
        if size == 0 {
            return Err(Error::input(path, "an empty file is not a table"));
        }
        if let Some((_, compression)) = csv_ending(&name) {
            check_csv_header(path, compression)?;
            check_records(path, compression)?;
            crate::error::reading_csv(path);
        }
        match extension(path).as_str() {
            "parquet" => {
                crate::warehouse::parquet::describe(path)?;
                if has_wildcards(&name) {
                    register_parquet(ctx, &name, path, Vec::new()).await?;
                }
            }
            "json" | "ndjson" | "jsonl" => register_json(ctx, &name, path).await?,
            _ if csv_ending(&name).is_some() => register_csv(ctx, &name, path).await?,
            _ => {}
        }
    }
    Ok(())
}

/// The one-part table names of a statement that look like file paths.
fn named(statement: &Statement) -> Vec<String> {
    let mut names = Vec::new();
    let mut add = |n: &ObjectName| {
        if let [part] = n.0.as_slice()
            && let Some(ident) = part.as_ident()
            && (ident.value.contains('.') || ident.value.contains('/'))
        {
            names.push(ident.value.clone());
        }
        ControlFlow::<()>::Continue(())
    };
    match statement {
        Statement::Statement(s) => {
            let _ = visit_relations(s.as_ref(), &mut add);
        }
        Statement::CopyTo(c) => match &c.source {
            CopyToSource::Relation(n) => {
                let _ = add(n);
            }
            CopyToSource::Query(q) => {
                let _ = visit_relations(q.as_ref(), &mut add);
            }
        },
        Statement::Explain(e) => names.extend(named(&e.statement)),
        _ => {}
    }
    names
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A folder of Parquet files (`cxr export --partition-by`): every `.parquet` file
/// under it, with the `COL=value` folders of a hive layout as columns (text). A
/// folder without Parquet files, or with a damaged one, is an error naming it.
async fn register_folder(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    // Each file is checked first, as a named file is: a damaged one is named.
    let files = parquet_files(path, 0)?;
    if files.is_empty() {
        return Err(Error::input(
            path,
            "a folder is read as a table of the Parquet files in it, and this one has none",
        ));
    }
    for file in &files {
        crate::warehouse::parquet::describe(file)?;
    }
    // The `COL=value` folders between the folder and its first file name the
    // partition columns, as the export writes them: integers where every file's
    // value is one (`follow_up=9` read as text sorted before `18`), text otherwise.
    use datafusion::arrow::datatypes::DataType;
    let values = |k: usize| {
        files.iter().map(move |f| {
            hive_columns(f.strip_prefix(path).unwrap_or(f))
                .get(k)
                .map(|(_, value)| value.to_string())
        })
    };
    let partitions = hive_columns(files[0].strip_prefix(path).unwrap_or(&files[0]))
        .into_iter()
        .enumerate()
        .map(|(k, (col, _))| {
            let integers = values(k).all(|v| v.is_some_and(|v| v.parse::<i64>().is_ok()));
            let data_type = if integers {
                DataType::Int64
            } else {
                DataType::Utf8
            };
            (col.to_string(), data_type)
        })
        .collect();
    register_parquet(ctx, name, path, partitions).await
}

/// A glob of Parquet files (`'runs/*/out.parquet'`), expanded here: DataFusion's own
/// matching leaves a path's `COL=value` folders out before it compares, so a glob
/// through hive folders (`'dataset/*/*.parquet'`) matched nothing. The `COL=value`
/// folders a file's path passes through below the glob's fixed part are columns
/// (text), as in a folder. A pattern that matches no file is an error.
async fn register_glob(ctx: &SessionContext, pattern: &str) -> Result<()> {
    const MAX_FILES: usize = 10_000;
    let at = Path::new(pattern);
    let matches = glob::glob(pattern)
        .map_err(|e| Error::input(at, format!("not a file pattern: {}", e.msg)))?;
    let mut files = Vec::new();
    for found in matches {
        let file = found.map_err(|e| Error::input(e.path(), "cannot read"))?;
        if file.is_file() {
            files.push(file);
        }
        if files.len() > MAX_FILES {
            return Err(Error::input(
                at,
                format!("matches more than {MAX_FILES} files; name their folder instead"),
            ));
        }
    }
    if files.is_empty() {
        return Err(Error::input(at, "no Parquet file matches this pattern"));
    }
    // The folders before the first one with a wildcard are the pattern's fixed part.
    let fixed: std::path::PathBuf = at
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    let mut table: Option<datafusion::prelude::DataFrame> = None;
    for file in &files {
        crate::warehouse::parquet::describe(file)?;
        let unreadable = |e| Error::input(file, format!("not a readable Parquet table: {e}"));
        let mut frame = ctx
            .read_parquet(
                literal_url(file)?,
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .map_err(unreadable)?;
        for (column, value) in hive_columns(file.strip_prefix(&fixed).unwrap_or(file)) {
            frame = frame
                .with_column(column, datafusion::prelude::lit(value))
                .map_err(unreadable)?;
        }
        table = Some(match table {
            None => frame,
            Some(before) => before.union(frame).map_err(|e| {
                Error::input(
                    file,
                    format!(
                        "its columns differ from those of {}: {e}",
                        files[0].display()
                    ),
                )
            })?,
        });
    }
    let table = table.expect("at least one file");
    ctx.register_table(TableReference::bare(pattern), table.into_view())?;
    Ok(())
}

/// The `COL=value` folders of a relative file path, in order.
fn hive_columns(path: &Path) -> Vec<(&str, &str)> {
    path.parent()
        .into_iter()
        .flat_map(Path::components)
        .filter_map(|c| c.as_os_str().to_str()?.split_once('='))
        .collect()
}

/// The `.parquet` files under `dir` (folders at most 4 deep), in name order.
fn parquet_files(dir: &Path, depth: usize) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    if depth > 4 {
        return Ok(out);
    }
    let mut entries: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .ctx(|| format!("{}: cannot list", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(parquet_files(&p, depth + 1)?);
        } else if extension(&p) == "parquet" {
            out.push(p);
        }
    }
    Ok(out)
}

/// Registers a folder of Parquet files under the name the query uses.
async fn register_parquet(
    ctx: &SessionContext,
    name: &str,
    path: &Path,
    partitions: Vec<(String, datafusion::arrow::datatypes::DataType)>,
) -> Result<()> {
    let location = literal_url(path)?;
    let options = datafusion::prelude::ParquetReadOptions {
        table_partition_cols: partitions,
        ..Default::default()
    };
    ctx.register_parquet(TableReference::bare(name), location, options)
        .await
        .map_err(|e| Error::input(path, format!("not a readable Parquet table: {e}")))
}

/// Refuses a CSV file whose header names a column twice: DataFusion reads a CSV by
/// its column names, and failed with "incorrect number of fields for line 1" or
/// "Fail to merge schema field", naming neither the file nor the column.
fn check_csv_header(path: &Path, compression: FileCompressionType) -> Result<()> {
    use std::io::{BufRead, Read};
    let reader = open_text(path, compression)?;
    // The first line, at most 1 MiB of it; an unreadable one is DataFusion's to report.
    let mut line = Vec::new();
    if std::io::BufReader::new(reader.take(1 << 20))
        .read_until(b'\n', &mut line)
        .is_err()
    {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&line);
    let text = text
        .trim_start_matches('\u{feff}')
        .trim_end_matches(['\r', '\n']);
    let mut seen = std::collections::HashSet::new();
    for name in crate::input::csv::split_record(text) {
        if !name.is_empty() && !seen.insert(name.clone()) {
            return Err(Error::input_at(
                path,
                1,
                Some(&name),
                "this column appears twice in the header; a CSV file is read as a table by its column names",
            ));
        }
    }
    Ok(())
}

/// A CSV file's text, decompressed as its name says.
fn open_text(path: &Path, compression: FileCompressionType) -> Result<Box<dyn std::io::Read>> {
    let file = std::fs::File::open(path).ctx(|| format!("{}: cannot read", path.display()))?;
    Ok(if compression == FileCompressionType::GZIP {
        // cxr's gzip reader, as for every gzip file it reads.
        Box::new(crate::input::gzip::decoder(file))
    } else {
        compression.convert_read(file)?
    })
}

/// The longest record a CSV file named in a query may hold. DataFusion's CSV reader
/// holds a record whole, so a file that is one endless line (10 MB of gzip make 10 GB
/// of zeros) would take its size in memory; no table's record comes near this.
const MAX_QUERY_RECORD_BYTES: u64 = 16 << 20;

/// Reads a CSV file once, before DataFusion does, and refuses it at the first record
/// longer than [`MAX_QUERY_RECORD_BYTES`] (line breaks inside quotes are part of a
/// record), at the first record whose number of fields is not the header's, and at a
/// quote left open at its end, each with the line it starts on: DataFusion's reader
/// holds a record whole, and names neither the file nor its line. A quote opens a
/// quoted field only at a field's start, as the CSV reader takes it (`14" monitor`
/// is text), and `""` inside quotes is a quote; blank lines are no records, as for
/// the reader. Memory stays one buffer; damage that stops the reading (a broken
/// gzip stream) is an error naming the file.
fn check_records(path: &Path, compression: FileCompressionType) -> Result<()> {
    let mut reader = open_text(path, compression)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut records = CsvRecords::new(path);
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return records.end(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let what = if compression.is_compressed() {
                    "cannot be decompressed as its name says"
                } else {
                    "cannot be read"
                };
                return Err(Error::input(path, format!("{what}: {e}")));
            }
        };
        records.scan(&buffer[..n])?;
    }
}

/// Where [`check_records`] is in a CSV file.
struct CsvRecords<'a> {
    path: &'a Path,
    /// Bytes read so far, and where the current record starts.
    read: u64,
    record_start: u64,
    /// The line read and the line the current record starts on.
    line: u64,
    record_line: u64,
    in_quotes: bool,
    /// The last byte read, and where the last quoted field closed (a quote right
    /// after it is an escaped quote: the field goes on).
    last: u8,
    closed_at: Option<u64>,
    /// Fields of the current record so far, and of the header once read.
    fields: u64,
    header_fields: Option<u64>,
    /// A quoted field closed at the end of the last buffer: the next byte must end
    /// the field.
    closed_at_end: bool,
}

impl<'a> CsvRecords<'a> {
    fn new(path: &'a Path) -> Self {
        CsvRecords {
            path,
            read: 0,
            record_start: 0,
            line: 1,
            record_line: 1,
            in_quotes: false,
            last: b'\n',
            closed_at: None,
            fields: 1,
            header_fields: None,
            closed_at_end: false,
        }
    }

    fn scan(&mut self, bytes: &[u8]) -> Result<()> {
        if std::mem::take(&mut self.closed_at_end) {
            self.after_close(bytes.first().copied())?;
        }
        for at in memchr::memchr3_iter(b'"', b'\n', b',', bytes) {
            let here = self.read + at as u64;
            let previous = if at > 0 { bytes[at - 1] } else { self.last };
            match bytes[at] {
                b'"' if self.in_quotes => {
                    self.in_quotes = false;
                    self.closed_at = Some(here);
                    match bytes.get(at + 1) {
                        Some(&next) => self.after_close(Some(next))?,
                        None => self.closed_at_end = true,
                    }
                }
                b'"' => {
                    self.in_quotes = self.closed_at.is_some_and(|c| c + 1 == here)
                        || matches!(previous, b',' | b'\n' | b'\r');
                }
                _ if self.in_quotes => {
                    if bytes[at] == b'\n' {
                        self.line += 1;
                    }
                }
                b',' => self.fields += 1,
                _ => {
                    self.line += 1;
                    let blank = here == self.record_start
                        || (here == self.record_start + 1 && previous == b'\r');
                    self.end_record(here, blank)?;
                    (self.record_start, self.record_line) = (here + 1, self.line);
                }
            }
        }
        self.read += bytes.len() as u64;
        self.last = bytes.last().copied().unwrap_or(self.last);
        if self.read - self.record_start > MAX_QUERY_RECORD_BYTES {
            return self.too_long();
        }
        Ok(())
    }

    /// The byte after a quoted field's closing quote: a comma, a line break, a quote
    /// (`""`, a quote inside the field) or the end. Anything else is a quote that
    /// never closed, which made the lines after it part of its field (DataFusion's
    /// reader takes it, and a file read one record short).
    fn after_close(&self, next: Option<u8>) -> Result<()> {
        match next {
            None | Some(b',' | b'\n' | b'\r' | b'"') => Ok(()),
            Some(_) => Err(Error::input_at(
                self.path,
                self.line,
                None,
                "a quoted field ends here and text follows its closing quote: a quote opened before it is not closed where its field ends",
            )),
        }
    }

    /// The record ending at byte `end` read: its length and number of fields.
    fn end_record(&mut self, end: u64, blank: bool) -> Result<()> {
        if end - self.record_start > MAX_QUERY_RECORD_BYTES {
            return self.too_long();
        }
        let fields = std::mem::replace(&mut self.fields, 1);
        if blank {
            return Ok(());
        }
        match self.header_fields {
            None => self.header_fields = Some(fields),
            Some(header) if header != fields => {
                let count = |n: u64| format!("{n} field{}", if n == 1 { "" } else { "s" });
                return Err(Error::input_at(
                    self.path,
                    self.record_line,
                    None,
                    format!(
                        "this record has {}, the header (line 1) {}; every record of a CSV file needs the same number of fields",
                        count(fields),
                        count(header)
                    ),
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// The file's end: a quote left open, or a last record without a line break.
    fn end(mut self) -> Result<()> {
        if self.in_quotes {
            return Err(Error::input_at(
                self.path,
                self.record_line,
                None,
                "a quoted field of the record starting here is not closed by the end of the file",
            ));
        }
        if self.read > self.record_start {
            let blank = self.read == self.record_start + 1 && self.last == b'\r';
            self.end_record(self.read, blank)?;
        }
        Ok(())
    }

    fn too_long(&self) -> Result<()> {
        Err(Error::input_at(
            self.path,
            self.record_line,
            None,
            format!(
                "a record longer than {} MiB: cxr reads CSV records of at most that (a field this long is not table data)",
                MAX_QUERY_RECORD_BYTES >> 20
            ),
        ))
    }
}

/// A JSON file: one object per line, or one array of objects (cxr's `--format json`).
async fn register_json(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ctx(|| format!("{name}: cannot read"))?;
    let array = head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    let ext = format!(".{}", extension(path));
    let options = JsonReadOptions {
        file_extension: &ext,
        newline_delimited: !array,
        // Types from every object: a key null in the first thousand was typed
        // Null, and the file failed at its first value.
        schema_infer_max_records: usize::MAX,
        ..Default::default()
    };
    if array {
        // A JSON array is read whole: DataFusion would split the file into byte
        // ranges, which its array reader refuses.
        ctx.state_ref()
            .write()
            .config_mut()
            .options_mut()
            .optimizer
            .repartition_file_scans = false;
    }
    let location = literal_url(path)?;
    let unreadable = |e| Error::input(path, format!("not a readable JSON table: {e}"));
    let table = TableReference::bare(name);
    ctx.register_json(table.clone(), &location, options.clone())
        .await
        .map_err(unreadable)?;
    // DataFusion infers the columns in name order; a file cxr wrote keeps its own.
    let inferred = ctx.table_provider(table.clone()).await?.schema();
    let Some(order) = first_object_keys(path, array) else {
        return Ok(());
    };
    let mut fields: Vec<_> = inferred.fields().iter().cloned().collect();
    fields.sort_by_key(|f| {
        order
            .iter()
            .position(|k| k == f.name())
            .unwrap_or(usize::MAX)
    });
    let schema = datafusion::arrow::datatypes::Schema::new(fields);
    ctx.deregister_table(table.clone())?;
    let options = JsonReadOptions {
        schema: Some(&schema),
        ..options
    };
    ctx.register_json(table, &location, options)
        .await
        .map_err(unreadable)
}

/// The keys of a JSON file's first object, in the order written (None when it
/// cannot be read: DataFusion's order then stands). Only that object is parsed.
fn first_object_keys(path: &Path, array: bool) -> Option<Vec<String>> {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::io::BufRead;
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Keys, D::Error> {
            struct KeysVisitor;
            impl<'de> Visitor<'de> for KeysVisitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<M: MapAccess<'de>>(
                    self,
                    mut map: M,
                ) -> std::result::Result<Keys, M::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(KeysVisitor)
        }
    }
    let mut file = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    if array {
        // Past the array's `[`: the first object is then the stream's first value.
        let mut skipped = Vec::new();
        file.read_until(b'[', &mut skipped).ok()?;
    }
    serde_json::Deserializer::from_reader(file)
        .into_iter::<Keys>()
        .next()?
        .ok()
        .map(|k| k.0)
}
