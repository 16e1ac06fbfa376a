//! Printing and writing query results: table, csv, json, ndjson, markdown, parquet.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
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

/// Longest cell text in the table format; longer cells are cut with `…`.
const MAX_CELL: usize = 80;

/// A result being written row batch by row batch in one of the text formats.
enum TextSink<'w> {
    Csv(&'w mut dyn Write),
    Markdown(&'w mut dyn Write),
    Json(datafusion::arrow::json::ArrayWriter<&'w mut dyn Write>),
    Ndjson(datafusion::arrow::json::LineDelimitedWriter<&'w mut dyn Write>),
}

impl<'w> TextSink<'w> {
    /// Starts writing; the header (if the format has one) goes out at once.
    fn begin(out: &'w mut dyn Write, schema: &SchemaRef, format: Format) -> Result<TextSink<'w>> {
        use datafusion::arrow::json::WriterBuilder;
        use datafusion::arrow::json::writer::{JsonArray, LineDelimited};
        let head = header(schema);
        Ok(match format {
            Format::Csv | Format::Table => {
                write_csv_header(out, schema)?;
                TextSink::Csv(out)
            }
            Format::Markdown => {
                let cells: Vec<_> = head.iter().map(|h| markdown_cell(h)).collect();
                writeln!(out, "| {} |", cells.join(" | ")).map_err(io)?;
                writeln!(out, "|{}", " --- |".repeat(head.len())).map_err(io)?;
                TextSink::Markdown(out)
            }
            // NULLs written as `null`: a key left out changes the columns (and their
            // order) that a reader of the file finds.
            Format::Json => TextSink::Json(
                WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, JsonArray>(out),
            ),
            Format::Ndjson => TextSink::Ndjson(
                WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, LineDelimited>(out),
            ),
        })
    }

    fn write(&mut self, b: &RecordBatch) -> Result<()> {
        match self {
            TextSink::Csv(out) => write_csv_rows(out, b)?,
            TextSink::Markdown(out) => {
                for row in rows_as_text(b, "")? {
                    let cells: Vec<_> = row.iter().map(|c| markdown_cell(c)).collect();
                    writeln!(out, "| {} |", cells.join(" | ")).map_err(io)?;
                }
            }
            TextSink::Json(w) => {
                check_temporal(b)?;
                w.write(b).map_err(arrow_io)?
            }
            TextSink::Ndjson(w) => {
                check_temporal(b)?;
                w.write(b).map_err(arrow_io)?
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            TextSink::Json(mut w) => {
                w.finish().map_err(arrow_io)?;
                writeln!(w.into_inner()).map_err(io)
            }
            TextSink::Ndjson(mut w) => w.finish().map_err(arrow_io),
            _ => Ok(()),
        }
    }
}

/// A CSV header line: the schema's column names.
pub fn write_csv_header(out: &mut dyn Write, schema: &SchemaRef) -> Result<()> {
    let cells: Vec<_> = header(schema)
        .iter()
        .map(|h| csv_field(h).into_owned())
        .collect();
    writeln!(out, "{}", cells.join(",")).map_err(io)
}

/// A batch's rows as CSV lines, as `--format csv` writes them.
pub fn write_csv_rows(out: &mut dyn Write, batch: &RecordBatch) -> Result<()> {
    for row in rows_as_text(batch, "")? {
        let cells: Vec<_> = row.iter().map(|c| csv_field(c)).collect();
        writeln!(out, "{}", cells.join(",")).map_err(io)?;
    }
    Ok(())
}

/// Writes whole batches in a text format (`Table` is written as CSV).
pub fn write_batches(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<()> {
    let mut sink = TextSink::begin(out, schema, format)?;
    for batch in batches {
        sink.write(batch)?;
    }
    sink.finish()
}

/// An arrow write error that wraps an I/O error (a closed pipe) stays an I/O error.
fn arrow_io(e: datafusion::arrow::error::ArrowError) -> Error {
    match e {
        // The message is the source's own text: said once.
        datafusion::arrow::error::ArrowError::IoError(_, source) => {
            Error::io("writing results", source)
        }
        other => other.into(),
    }
}

/// Prints a query's result to stdout as it streams: the query stops as soon as the
/// reader goes away (a closed pipe) or, for the table format, `max_rows` rows (0:
/// all) are in hand, so memory stays bounded by what is shown.
pub async fn print_stream(
    df: datafusion::prelude::DataFrame,
    format: Format,
    max_rows: usize,
    asked: Asked,
) -> Result<Tally> {
    let schema: SchemaRef = df.schema().inner().clone();
    let mut tally = Tally::default();
    if schema.fields().is_empty() {
        // A statement without a result (e.g. CREATE VIEW with --allow-write).
        df.collect().await?;
        return Ok(tally);
    }
    let mut spent = Spent::default();
    let started = std::time::Instant::now();
    let mut stream = df.execute_stream().await?;
    spent.run += started.elapsed();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if format == Format::Table {
        // The table is printed once it has more rows than it shows; the rest are
        // counted, not kept, for the footer's total.
        let mut batches = Vec::new();
        let mut kept = 0u64;
        let mut shown = None;
        while let Some(b) = spent.next(&mut stream).await {
            let b = b?;
            tally.add(&b);
            if shown.is_some() {
                if stdout_closed() {
                    // Nothing is written while rows are counted, so no write
                    // fails: `| head` would otherwise wait for the whole query.
                    return Err(Error::io(
                        "writing to stdout",
                        std::io::ErrorKind::BrokenPipe.into(),
                    ));
                }
                continue;
            }
            kept += b.num_rows() as u64;
            batches.push(b);
            if max_rows != 0 && kept > max_rows as u64 {
                shown = Some(write_table(&mut out, &schema, &batches, max_rows)?);
                out.flush().map_err(|e| Error::io("writing to stdout", e))?;
                batches.clear();
            }
        }
        drop(stream);
        let started = std::time::Instant::now();
        let shown = match shown {
            Some(shown) => shown,
            None => write_table(&mut out, &schema, &batches, max_rows)?,
        };
        shown.write_footer(&mut out, tally.rows, asked)?;
        out.flush().map_err(|e| Error::io("writing to stdout", e))?;
        spent.print += started.elapsed();
        spent.trace();
        return Ok(tally);
    }
    // The first batch (or the error that stops the query, as most do) before the
    // header: a query that fails writes nothing to stdout.
    let first = spent.next(&mut stream).await.transpose()?;
    let started = std::time::Instant::now();
    let mut sink = TextSink::begin(&mut out, &schema, format)?;
    if let Some(b) = first {
        tally.add(&b);
        sink.write(&b)?;
    }
    spent.print += started.elapsed();
    while let Some(b) = spent.next(&mut stream).await {
        let b = b?;
        let started = std::time::Instant::now();
        tally.add(&b);
        sink.write(&b)?;
        spent.print += started.elapsed();
    }
    let started = std::time::Instant::now();
    sink.finish()?;
    out.flush().map_err(|e| Error::io("writing to stdout", e))?;
    spent.print += started.elapsed();
    spent.trace();
    Ok(tally)
}

/// Where the time of a printed result goes: computing its batches (`run`) and
/// formatting and writing them (`print`), which interleave as it streams.
#[derive(Default)]
struct Spent {
    run: std::time::Duration,
    print: std::time::Duration,
}

impl Spent {
    async fn next(
        &mut self,
        stream: &mut datafusion::physical_plan::SendableRecordBatchStream,
    ) -> Option<datafusion::error::Result<RecordBatch>> {
        use futures::StreamExt;
        let started = std::time::Instant::now();
        let next = stream.next().await;
        self.run += started.elapsed();
        next
    }

    fn trace(&self) {
        crate::trace_spent("run", self.run);
        crate::trace_spent("print", self.print);
    }
}

/// Whether standard output is a pipe whose reader has gone (`| head` that has its
/// line): the write end of such a pipe polls as an error.
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout; poll only writes its revents.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// A word with its indefinite article: "an INT", "a FLOAT".
pub fn with_article(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

/// Where a result was asked for: the hints of a table's footer name what works there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// A command's flags.
    CommandLine,
    /// `cxr shell`'s backslash commands.
    Shell,
}

impl Asked {
    fn all_rows(self) -> &'static str {
        match self {
            Asked::CommandLine => "--max-rows 0",
            Asked::Shell => "\\maxrows 0",
        }
    }

    fn all_columns(self) -> &'static str {
        match self {
            Asked::CommandLine => "--format csv",
            Asked::Shell => "\\format csv",
        }
    }
}

/// What a printed or written result held: its rows, and whether any number in it
/// was other than zero (an aggregate over an empty cohort is rows of zeros).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub rows: u64,
    pub nonzero: bool,
}

impl Tally {
    fn add(&mut self, b: &RecordBatch) {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{DataType, Float64Type};
        self.rows += b.num_rows() as u64;
        if self.nonzero {
            return;
        }
        self.nonzero = b.columns().iter().any(|c| {
            c.data_type().is_numeric()
                && datafusion::arrow::compute::cast(c, &DataType::Float64).is_ok_and(|f| {
                    f.as_primitive::<Float64Type>()
                        .iter()
                        .any(|v| v.is_some_and(|x| x != 0.0))
                })
        });
    }
}

/// A Markdown table cell: a `|` escaped, a line break as `<br>` (a raw one would end
/// the row).
fn markdown_cell(c: &str) -> String {
    visible(
        &c.replace('|', "\\|")
            .replace("\r\n", "<br>")
            .replace(['\n', '\r'], "<br>"),
    )
}

fn io(e: std::io::Error) -> Error {
    Error::io("writing results", e)
}

/// Formats every cell of a batch as text, row by row. A value that cannot be shown
/// (a date out of range) is an error, not the text of one in the cell (arrow's
/// default).
pub fn rows_as_text(batch: &RecordBatch, null: &str) -> Result<Vec<Vec<String>>> {
    let opts = FormatOptions::default()
        .with_null(null)
        .with_display_error(false);
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<_, _>>()?;
    (0..batch.num_rows())
        .map(|r| {
            formatters
                .iter()
                .map(|f| f.value(r).try_to_string().map_err(unshowable))
                .collect()
        })
        .collect()
}

/// Fails on a date, time or duration of the batch that cannot be shown: the JSON
/// writers, like arrow's other formatters, would write the error's text as its
/// value.
fn check_temporal(batch: &RecordBatch) -> Result<()> {
    use datafusion::arrow::array::Array;
    let opts = FormatOptions::default().with_display_error(false);
    for column in batch
        .columns()
        .iter()
        .filter(|c| c.data_type().is_temporal())
    {
        let formatter = ArrayFormatter::try_new(column.as_ref(), &opts)?;
        for r in (0..column.len()).filter(|&r| column.is_valid(r)) {
            formatter.value(r).try_to_string().map_err(unshowable)?;
        }
    }
    Ok(())
}

/// A value the query computed that has no text (a date past year 262143): the
/// query's to fix, as a cast out of range is.
fn unshowable(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::Query(format!("a result value cannot be shown: {e}"))
}

fn header(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// Cuts a cell to `limit` characters, the last one `…`; a line break ends it too
/// (a table row is one line).
fn cut_to(cell: String, limit: usize) -> String {
    let first = cell.lines().next().unwrap_or("");
    let more_lines = first.len() != cell.len();
    let line = visible(first);
    if !more_lines && line.chars().count() <= limit {
        return line;
    }
    line.chars().take(limit - 1).collect::<String>() + "…"
}

/// A cell's control characters written out (`\t`, `\u{1b}`): printed raw, a tab
/// breaks the table's columns and an escape sequence from the data would drive the
/// terminal.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What a printed table shows of its result, for the footer that follows it.
struct Shown {
    rows: usize,
    columns: usize,
    of_columns: usize,
}

impl Shown {
    /// The result's total rows, and what the table left out and how to see it.
    fn write_footer(&self, out: &mut dyn Write, total: u64, asked: Asked) -> Result<()> {
        let noun = if total == 1 { "row" } else { "rows" };
        let mut footer = format!("{} {noun}", thousands(total));
        if (self.rows as u64) < total {
            footer += &format!(" ({} shown; {} shows all)", self.rows, asked.all_rows());
        }
        if self.columns < self.of_columns {
            footer += &format!(
                ", {} columns ({} shown; a wider terminal or {} shows all)",
                self.of_columns,
                self.columns,
                asked.all_columns()
            );
        }
        writeln!(out, "{footer}").map_err(io)
    }
}

/// Prints the first `max_rows` rows of `batches` (all when 0) as a table fitted to
/// the terminal; the footer is the caller's, once every row is counted.
fn write_table(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: usize,
) -> Result<Shown> {
    let kept: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let limit = if max_rows == 0 {
        kept
    } else {
        max_rows.min(kept)
    };
    let width = terminal_width();
    let mut header = header(schema);
    let mut rows = Vec::with_capacity(limit);
    'outer: for b in batches {
        for row in rows_as_text(b, "NULL")? {
            if rows.len() == limit {
                break 'outer;
            }
            rows.push(row);
        }
    }
    // Cells are cut to 80 characters (less on a narrow terminal); when the columns
    // still do not fit, the widest are cut, no shorter than 20 and only as far as
    // the terminal needs, before any column is hidden, as DuckDB does.
    let cell_limit = width.map_or(MAX_CELL, |w| MAX_CELL.min(w.saturating_sub(8)).max(8));
    let mut widths = cut_cells(&mut header, &mut rows, cell_limit);
    if let Some(w) = width
        && fitting_columns(&widths, w) != (widths.len(), 0)
    {
        let limit = cell_limit_for(&widths, w, NARROW_CELL.min(cell_limit), cell_limit);
        widths = cut_cells(&mut header, &mut rows, limit);
    }
    let (left, right) = width.map_or((widths.len(), 0), |w| fitting_columns(&widths, w));
    let shown_columns = |row: &[String]| -> Vec<String> {
        if left + right == row.len() {
            return row.to_vec();
        }
        let mut kept = row[..left].to_vec();
        kept.push("…".into());
        kept.extend_from_slice(&row[row.len() - right..]);
        kept
    };
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(shown_columns(&header));
    for row in &rows {
        table.add_row(shown_columns(row));
    }
    writeln!(out, "{table}").map_err(io)?;
    Ok(Shown {
        rows: rows.len(),
        columns: left + right,
        of_columns: header.len(),
    })
}

/// The longest a cell may be in a table `widths` wide (each column's widest cell)
/// on a terminal `width` wide: the most that shows every column; else, with the
/// columns that fit at `floor` shown, the most that they still fit in (the space of
/// hidden columns goes to the shown ones).
fn cell_limit_for(widths: &[usize], width: usize, floor: usize, most: usize) -> usize {
    let cut = |limit: usize| -> Vec<usize> { widths.iter().map(|&c| c.min(limit)).collect() };
    if let Some(limit) = (floor..most)
        .rev()
        .find(|&l| fitting_columns(&cut(l), width) == (widths.len(), 0))
    {
        return limit;
    }
    let shown = fitting_columns(&cut(floor), width);
    (floor..most)
        .rev()
        .find(|&l| {
            let (left, right) = fitting_columns(&cut(l), width);
            left + right >= shown.0 + shown.1
        })
        .unwrap_or(floor)
}

/// Cells of a table that does not fit the terminal are cut to this many characters
/// before columns are hidden.
const NARROW_CELL: usize = 20;

/// Cuts the header and every cell to `limit` characters; returns each column's width.
fn cut_cells(header: &mut [String], rows: &mut [Vec<String>], limit: usize) -> Vec<usize> {
    for cell in header.iter_mut().chain(rows.iter_mut().flatten()) {
        *cell = cut_to(std::mem::take(cell), limit);
    }
    (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| display_width(&r[c]))
                .chain([display_width(&header[c])])
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// Columns of `widths` (their text widths) that fit a terminal `width` wide, taken
/// from both ends as DuckDB does: how many from the left and from the right, the
/// rest shown as one `…` column between them. At least the first is kept.
fn fitting_columns(widths: &[usize], width: usize) -> (usize, usize) {
    // Each column costs its text, a space either side and one separator; the table
    // one more border.
    let cost = |w: usize| w + 3;
    if widths.iter().map(|&w| cost(w)).sum::<usize>() < width {
        return (widths.len(), 0);
    }
    let mut budget = width.saturating_sub(1 + cost(1));
    let (mut left, mut right) = (0, 0);
    while left + right < widths.len() {
        let from_left = left <= right;
        let next = if from_left {
            widths[left]
        } else {
            widths[widths.len() - 1 - right]
        };
        if cost(next) > budget {
            break;
        }
        budget -= cost(next);
        if from_left {
            left += 1;
        } else {
            right += 1;
        }
    }
    (left.max(1), right)
}

/// Columns a text takes on a terminal (wide characters count two).
fn display_width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// The width text is fitted to: `$COLUMNS` when set, else the width of the terminal
/// stdout is (80 if it cannot be told), else None (not a terminal: nothing is cut).
pub fn terminal_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(columns);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    Some(if ok && size.ws_col > 0 {
        size.ws_col as usize
    } else {
        80
    })
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// `1 row`, `112,120 rows`.
pub fn rows(n: u64) -> String {
    format!("{} row{}", thousands(n), if n == 1 { "" } else { "s" })
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

/// A small table of cxr's own (a summary, a list of queries): drawn as a table on a
/// terminal, CSV in a pipe or file, as query results are.
pub struct Listing {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Listing {
    /// An empty listing with these column names.
    pub fn new(header: &[&str]) -> Listing {
        Listing {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (a cell may hold line breaks: lines in a table, `; ` in CSV).
    pub fn add_row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Prints the listing: as [`Listing::render`] makes it, or in `format` (every
    /// column text; a cell's line breaks kept).
    pub fn print(&self, format: Option<Format>) -> Result<()> {
        let format = match format {
            None => return print_text(&self.render()),
            Some(Format::Table) => return print_text(&self.table()),
            Some(f) => f,
        };
        let columns: Vec<(&str, ArrayRef)> = self
            .header
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let cells: datafusion::arrow::array::StringArray = self
                    .rows
                    .iter()
                    .map(|r| r.get(k).map(String::as_str))
                    .collect();
                (name.as_str(), Arc::new(cells) as ArrayRef)
            })
            .collect();
        let batch = RecordBatch::try_from_iter(columns)?;
        let mut text = Vec::new();
        write_batches(&mut text, &batch.schema(), &[batch], format)?;
        print_text(String::from_utf8_lossy(&text).trim_end_matches('\n'))
    }

    /// The listing as a table drawn to the terminal's width.
    fn table(&self) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(self.header.clone());
        // The width every table uses ($COLUMNS, else the terminal's, else 80):
        // comfy-table alone takes a terminal that reports no size as 0 wide.
        if let Some(w) = terminal_width() {
            t.set_width(u16::try_from(w).unwrap_or(u16::MAX));
        }
        for row in &self.rows {
            t.add_row(row.clone());
        }
        t.to_string()
    }

    /// The listing as text for stdout.
    pub fn render(&self) -> String {
        if std::io::stdout().is_terminal() {
            return self.table();
        }
        // Numbers as programs read them: `112,120` is written 112120.
        let plain = |c: &String| -> String {
            let digits = c.replace(',', "");
            let grouped = c.contains(',')
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && thousands(digits.parse().unwrap_or(0)) == *c;
            if grouped {
                digits
            } else {
                c.replace('\n', "; ")
            }
        };
        let line = |cells: &[String]| {
            cells
                .iter()
                .map(|c| csv_field(&plain(c)).into_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut text = line(&self.header);
        for row in &self.rows {
            text.push('\n');
            text += &line(row);
        }
        text
    }
}

/// Draws an image file under a temporary name beside `out` (with its extension,
/// which the drawing backend reads) and renames it into place: a failed or
/// interrupted plot leaves the previous file as it was and no half-drawn image.
pub fn write_image_atomic<E: std::fmt::Display>(
    out: &Path,
    draw: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    crate::warehouse::files::check_file_target(out)?;
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = crate::warehouse::files::temp_beside(out).with_extension(format!("tmp.{ext}"));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw(&tmp)));
    let drawn = match result {
        Ok(Ok(())) => std::fs::rename(&tmp, out)
            .map_err(|e| Error::io(format!("{}: cannot write the plot", out.display()), e)),
        Ok(Err(e)) => Err(Error::io(
            format!("{}: cannot draw the plot", out.display()),
            std::io::Error::other(e.to_string()),
        )),
        Err(p) => std::panic::resume_unwind(p),
    };
    if drawn.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drawn
}

/// Prints text to stdout; a closed pipe ends quietly, other errors are reported.
pub fn print_text(text: &str) -> Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match writeln!(lock, "{text}").and_then(|_| lock.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("writing to stdout", e)),
        Ok(()) => Ok(()),
    }
}

/// Prints generated SQL (`--show-sql`).
pub fn print_sql(sql: &str) -> Result<()> {
    print_text(&format!("{sql};"))
}

/// Writes a whole result to `path`, the format taken from its extension, streaming
/// batch by batch. The file appears only when complete.
pub async fn write_file(df: datafusion::prelude::DataFrame, path: &Path) -> Result<Tally> {
    use futures::StreamExt;
    let format = Format::from_extension(path)?;
    let schema: SchemaRef = df.schema().inner().clone();
    let mut stream = df.execute_stream().await?;
    let mut tally = Tally::default();
    match format {
        None => {
            let mut sink = crate::warehouse::parquet::ParquetSink::create(
                path,
                &schema,
                &crate::warehouse::parquet::WriteOptions::default(),
            )?;
            while let Some(b) = stream.next().await {
                let b = b?;
                tally.add(&b);
                sink.write(&b)?;
            }
            sink.finish()?;
        }
        Some(format) => {
            // A failed write (a full disk) names the file, as the Parquet writer's do.
            let named = |e: Error| match e {
                Error::Io { source, .. } => {
                    Error::io(format!("{}: cannot write", path.display()), source)
                }
                other => other,
            };
            let mut file = crate::warehouse::AtomicFile::create(path)?;
            let mut sink = TextSink::begin(file.writer(), &schema, format).map_err(named)?;
            while let Some(b) = stream.next().await {
                let b = b?;
                tally.add(&b);
                sink.write(&b).map_err(named)?;
            }
            sink.finish().map_err(named)?;
            file.commit()?;
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_take_the_room_the_shown_columns_leave() {
        // Every column fits once the two wide ones are cut to 30 (13 + 2 × 33 + 1 < 80).
        assert_eq!(cell_limit_for(&[10, 60, 60], 80, 20, 80), 30);
        // Five columns do not fit at 20: three are shown (13 + 23 + 23 and the `…`
        // column), and the two wide ones among them take the room left: 28.
        assert_eq!(cell_limit_for(&[10, 60, 60, 60, 60], 80, 20, 80), 28);
        let cut: Vec<usize> = [10, 60, 60, 60, 60]
            .iter()
            .map(|&c: &usize| c.min(28))
            .collect();
        assert_eq!(fitting_columns(&cut, 80), (2, 1));
    }

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

    #[test]
    fn markdown_cells_stay_on_their_row() {
        assert_eq!(markdown_cell("a|b"), "a\\|b");
        assert_eq!(markdown_cell("p\nq\r\nr"), "p<br>q<br>r");
        assert_eq!(markdown_cell("\u{1b}[31mred\tx"), "\\u{1b}[31mred\\tx");
        assert_eq!(cut_to("\u{1b}[31mred".into(), 80), "\\u{1b}[31mred");
    }
}
