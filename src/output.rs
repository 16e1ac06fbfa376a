//! Printing and writing query results: table, csv, json, ndjson, markdown, parquet.

use std::io::{IsTerminal, Write};
use std::path::Path;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};

/// Output formats for results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A boxed table sized to the terminal, with a row-count footer.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A GitHub-flavoured Markdown table.
    Markdown,
}

impl Format {
    /// The default: `table` on a terminal, `csv` when stdout is a pipe or file.
    pub fn default_for_stdout() -> Format {
        if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Csv
        }
    }

    /// The format implied by an output file's extension (`None` for parquet).
    pub fn from_extension(path: &Path) -> Result<Option<Format>> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "parquet" => Ok(None),
            "csv" => Ok(Some(Format::Csv)),
            "json" => Ok(Some(Format::Json)),
            "ndjson" | "jsonl" => Ok(Some(Format::Ndjson)),
            "md" => Ok(Some(Format::Markdown)),
            _ => Err(Error::Usage(format!(
                "cannot tell the format of {} from its extension; use .parquet, .csv, .json or .ndjson",
                path.display()
            ))),
        }
    }
}

/// Writes `batches` to `out` in `format`. `max_rows` limits the table format only
/// (0 = all rows).
pub fn write_batches(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    max_rows: usize,
) -> Result<()> {
    let result = match format {
        Format::Table => write_table(out, schema, batches, max_rows),
        Format::Csv => write_csv(out, schema, batches),
        Format::Markdown => write_markdown(out, schema, batches),
        Format::Json => write_json(out, batches, true),
        Format::Ndjson => write_json(out, batches, false),
    };
    match result {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Prints `batches` to stdout.
pub fn print_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    max_rows: usize,
) -> Result<()> {
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    write_batches(&mut lock, schema, batches, format, max_rows)?;
    match lock.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing to stdout", e))
        }
        _ => Ok(()),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::io("writing results", e)
}

/// Formats every cell of a batch as text, row by row.
pub fn rows_as_text(batch: &RecordBatch, null: &str) -> Result<Vec<Vec<String>>> {
    let opts = FormatOptions::default().with_null(null);
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<_, _>>()?;
    Ok((0..batch.num_rows())
        .map(|r| formatters.iter().map(|f| f.value(r).to_string()).collect())
        .collect())
}

fn header(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn write_table(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: usize,
) -> Result<()> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let limit = if max_rows == 0 {
        total
    } else {
        max_rows.min(total)
    };
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header(schema));
    if !std::io::stdout().is_terminal() {
        table.set_width(200);
    }
    let mut shown = 0;
    'outer: for b in batches {
        for row in rows_as_text(b, "NULL")? {
            if shown == limit {
                break 'outer;
            }
            table.add_row(row);
            shown += 1;
        }
    }
    writeln!(out, "{table}").map_err(io)?;
    let noun = if total == 1 { "row" } else { "rows" };
    if shown < total {
        writeln!(
            out,
            "{} {noun} ({shown} shown; --max-rows 0 shows all)",
            thousands(total as u64)
        )
        .map_err(io)
    } else {
        writeln!(out, "{} {noun}", thousands(total as u64)).map_err(io)
    }
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

fn write_csv(out: &mut dyn Write, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let head: Vec<_> = header(schema)
        .iter()
        .map(|h| csv_field(h).into_owned())
        .collect();
    writeln!(out, "{}", head.join(",")).map_err(io)?;
    for b in batches {
        for row in rows_as_text(b, "")? {
            let cells: Vec<_> = row.iter().map(|c| csv_field(c)).collect();
            writeln!(out, "{}", cells.join(",")).map_err(io)?;
        }
    }
    Ok(())
}

fn write_markdown(out: &mut dyn Write, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let esc = |s: &str| s.replace('|', "\\|");
    let head = header(schema);
    writeln!(
        out,
        "| {} |",
        head.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")
    )
    .map_err(io)?;
    writeln!(out, "|{}", " --- |".repeat(head.len())).map_err(io)?;
    for b in batches {
        for row in rows_as_text(b, "")? {
            writeln!(
                out,
                "| {} |",
                row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            )
            .map_err(io)?;
        }
    }
    Ok(())
}

fn write_json(out: &mut dyn Write, batches: &[RecordBatch], array: bool) -> Result<()> {
    use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    if array {
        let mut w = ArrayWriter::new(&mut *out);
        w.write_batches(&refs)?;
        w.finish()?;
        writeln!(out).map_err(io)
    } else {
        let mut w = LineDelimitedWriter::new(&mut *out);
        w.write_batches(&refs)?;
        w.finish()?;
        Ok(())
    }
}

/// `112120` → `112,120`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes a whole result to `path`, the format taken from its extension. The file
/// appears only when complete (written under a temporary name, then renamed).
pub async fn write_file(df: datafusion::prelude::DataFrame, path: &Path) -> Result<u64> {
    use datafusion::config::TableParquetOptions;
    use datafusion::dataframe::DataFrameWriteOptions;

    let format = Format::from_extension(path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let rows = match format {
        None => {
            let mut opts = TableParquetOptions::default();
            opts.global.compression = Some("zstd(3)".into());
            let tmp_parquet = tmp.with_extension("parquet");
            let counts = df
                .write_parquet(
                    &tmp_parquet.display().to_string(),
                    DataFrameWriteOptions::new().with_single_file_output(true),
                    Some(opts),
                )
                .await?;
            std::fs::rename(&tmp_parquet, &tmp)
                .map_err(|e| Error::io(format!("{}: cannot rename", tmp.display()), e))?;
            row_count(&counts)
        }
        Some(format) => {
            let schema: SchemaRef = df.schema().inner().clone();
            let batches = df.collect().await?;
            let file = std::fs::File::create(&tmp)
                .map_err(|e| Error::io(format!("{}: cannot create", tmp.display()), e))?;
            let mut w = std::io::BufWriter::new(file);
            write_batches(&mut w, &schema, &batches, format, 0)?;
            w.flush()
                .map_err(|e| Error::io(format!("{}: cannot write", tmp.display()), e))?;
            batches.iter().map(|b| b.num_rows() as u64).sum()
        }
    };
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::io(format!("{}: cannot write", path.display()), e))?;
    Ok(rows)
}

/// The row count DataFusion reports after a write.
fn row_count(batches: &[RecordBatch]) -> u64 {
    use datafusion::arrow::array::{Array, UInt64Array};
    batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|a| (0..a.len()).map(|i| a.value(i)).sum::<u64>())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separates() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(112120), "112,120");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn csv_quotes_when_needed() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("[a, b]"), "\"[a, b]\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
