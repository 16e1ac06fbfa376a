//! Reading the NIH CSV files: plain or gzip, LF or CRLF, with or without a BOM or a
//! final newline, columns found by header name. Polars parses the records; a light
//! pre-scan keeps the source line number of every record for `data_issues`.

use std::io::Read;
use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::input::issues::Issues;

/// A CSV file read into string columns, with each record's source line.
pub struct CsvTable {
    /// The file's path, as given.
    pub path: std::path::PathBuf,
    /// The file name used as `source_file` in `data_issues`.
    pub source: String,
    /// Header fields as written (trimmed).
    pub header: Vec<String>,
    /// One string column per field position parsed, named `c0`, `c1`, ... (every
    /// field, or those a reader picked: [`CsvTable::read_picking`]).
    pub frame: DataFrame,
    /// 1-based source line of each record (the header is line 1).
    pub lines: Vec<u64>,
}

/// The largest CSV cxr reads, after decompression (the largest real metadata file,
/// PadChest's, is 99 MB): a bound on what a hostile input can make cxr allocate.
pub const MAX_CSV_BYTES: u64 = 256 << 20;

/// The most records a CSV may have (the largest real release, MIMIC-CXR's metadata,
/// has 377,110): ingest holds every row in memory until its tables are written, so
/// this bounds its memory.
pub const MAX_RECORDS: usize = 1_000_000;

/// The longest field cxr reads (1 MiB); a longer one is an error naming its line
/// and column.
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// The most header fields a CSV may have (OpenI's DICOM dump, the widest real file,
/// has 176).
pub const MAX_FIELDS: usize = 4096;

/// Reads a whole input file, decompressing gzip by its magic bytes; at most
/// [`MAX_CSV_BYTES`] either way.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::input(path, format!("cannot read the file: {e}")))?;
    let mut reader = std::io::BufReader::new(file);
    let magic = std::io::BufRead::fill_buf(&mut reader)
        .map_err(|e| Error::input(path, format!("cannot read the file: {e}")))?
        .starts_with(&[0x1f, 0x8b]);
    // The whole size up front where the file tells it (gzip's last four bytes hold the
    // size modulo 4 GiB): a growing buffer would hold up to twice the text.
    let mut out = Vec::with_capacity(size_hint(path, magic).min(MAX_CSV_BYTES as usize));
    let too_big = || {
        Error::input(
            path,
            format!(
                "larger than {} MiB{}: not a metadata file cxr reads",
                MAX_CSV_BYTES >> 20,
                if magic { " once decompressed" } else { "" }
            ),
        )
    };
    let compressed = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut source: Box<dyn Read> = if magic {
        Box::new(crate::input::gzip::decoder(reader))
    } else {
        Box::new(reader)
    };
    // Read in steps, so that binary data and gzip bombs are refused after the first
    // step rather than after inflating them whole.
    loop {
        let before = out.len();
        (&mut source)
            .take(1 << 20)
            .read_to_end(&mut out)
            .map_err(|e| {
                if magic {
                    Error::input(path, format!("corrupt gzip data: {e}"))
                } else {
                    Error::input(path, format!("cannot read the file: {e}"))
                }
            })?;
        let done = out.len() == before;
        // A zip (RSNA's labels) is binary by design: its reader unpacks it. Text has
        // no NUL byte anywhere (a sparse file is text, then zeros).
        // (An empty zip is its end record alone.)
        if ![&b"PK\x03\x04"[..], b"PK\x05\x06"]
            .iter()
            .any(|m| out.starts_with(m))
        {
            refuse_nul(path, &out, before)?;
        }
        if done {
            break;
        }
        if out.len() as u64 > MAX_CSV_BYTES {
            return Err(too_big());
        }
        // Real metadata compresses about 9 times; 40 times past 32 MiB is a bomb.
        if magic && out.len() as u64 > 32 << 20 && out.len() as u64 > 40 * compressed.max(1) {
            return Err(Error::input(
                path,
                format!(
                    "decompresses to more than 40 times its {compressed} bytes: not a metadata file cxr reads"
                ),
            ));
        }
    }
    Ok(out)
}

/// The size of the text of `path`: the file's, or for a gzip file the size its
/// trailer records (0 when unknown).
fn size_hint(path: &Path, gzip: bool) -> usize {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    if !gzip {
        return file.metadata().map_or(0, |m| m.len() as usize);
    }
    let mut trailer = [0u8; 4];
    match file
        .seek(SeekFrom::End(-4))
        .and_then(|_| file.read_exact(&mut trailer))
    {
        Ok(()) => u32::from_le_bytes(trailer) as usize,
        Err(_) => 0,
    }
}

/// Field positions a reader picks from a header: every field when `None`.
type Picked = Option<Vec<usize>>;

impl CsvTable {
    /// Reads `path` as CSV. Errors name the file; an empty file, a binary file or a
    /// header that is not text are refused here.
    pub fn read(path: &Path, issues: &mut Issues) -> Result<CsvTable> {
        Self::read_picking(path, issues, |_| Ok(((), None))).map(|(t, ())| t)
    }

    /// Like [`CsvTable::read`], parsing only the fields `pick` chooses from the
    /// table's header (the table it is given has no records yet): a wide file's long
    /// text columns (PadChest's reports) are checked as CSV but never held as values.
    /// `pick` also returns what the reader keeps of its choice (e.g. the positions).
    pub fn read_picking<T>(
        path: &Path,
        issues: &mut Issues,
        pick: impl FnOnce(&CsvTable) -> Result<(T, Picked)>,
    ) -> Result<(CsvTable, T)> {
        let bytes = read_bytes(path)?;
        Self::from_bytes_picking(path, &bytes, issues, pick)
    }

    /// Parses CSV text already read from `path` (e.g. a member of an archive); errors
    /// and `data_issues` rows name `path`.
    pub fn from_bytes(path: &Path, bytes: &[u8], issues: &mut Issues) -> Result<CsvTable> {
        Self::from_bytes_picking(path, bytes, issues, |_| Ok(((), None))).map(|(t, ())| t)
    }

    /// [`CsvTable::from_bytes`] with the fields chosen as [`CsvTable::read_picking`] does.
    pub fn from_bytes_picking<T>(
        path: &Path,
        bytes: &[u8],
        issues: &mut Issues,
        pick: impl FnOnce(&CsvTable) -> Result<(T, Picked)>,
    ) -> Result<(CsvTable, T)> {
        let source = source_name(path);
        let bytes = lines_ended(bytes);
        // Before anything else: a zip member's bytes were not looked at as a file's are
        // (lines counted as everywhere, CR-only ends read as line ends).
        refuse_nul(path, &bytes, 0)?;
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let header_end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
        let header_line = std::str::from_utf8(&body[..header_end])
            .map_err(|_| Error::input_at(path, 1, None, "the header is not UTF-8 text"))?
            .trim_end_matches('\r');
        if header_line.trim().is_empty() {
            return Err(Error::input(path, "empty file: no header line"));
        }
        let plain: Vec<String> = split_record(header_line)
            .into_iter()
            .map(|h| h.trim().to_string())
            .collect();
        check_header(path, &plain)?;
        let expanded: Vec<String> = plain.iter().flat_map(|h| bracketed_parts(h)).collect();
        let data = if header_end < body.len() {
            &body[header_end + 1..]
        } else {
            &[][..]
        };
        let Scan {
            records,
            blank_lines,
        } = scan(path, &expanded, data)?;
        // A quoted bracketed name is its items only where the records give a value per
        // item (NIH's `"Bbox [x,y,w,h]"`); else it is one column's name.
        let header = if records.first().is_some_and(|r| r.fields >= expanded.len()) {
            check_header(path, &expanded)?;
            expanded
        } else {
            plain
        };
        // Fields past the header are reported below and never parsed: a record with
        // a million commas costs a count, not a million columns.
        let width = header.len();
        // Trailing unnamed header fields (`a,b,,,` as in NIH's box list) need no value.
        let named = header
            .iter()
            .rposition(|h| !h.is_empty())
            .map_or(0, |p| p + 1);
        for r in &records {
            let what = if r.fields > width {
                "fields past the header ignored"
            } else if r.fields < named {
                "the missing fields are empty"
            } else {
                continue;
            };
            issues.push(
                &source,
                Some(r.line),
                None,
                None,
                format!(
                    "record has {} fields but the header has {width}; {what}",
                    r.fields
                ),
            );
        }
        let mut table = CsvTable {
            path: path.to_path_buf(),
            source,
            header,
            frame: DataFrame::empty(),
            lines: Vec::new(),
        };
        let (kept, fields) = pick(&table)?;
        let data = if blank_lines {
            strip_blank_lines(data)
        } else {
            std::borrow::Cow::Borrowed(data)
        };
        let data = if records.iter().any(|r| r.fields > width) {
            std::borrow::Cow::Owned(cut_extra_fields(&data, width))
        } else {
            data
        };
        table.frame = parse_frame(path, &data, width, fields, records.len())?;
        table.lines = records.iter().map(|r| r.line).collect();
        Ok((table, kept))
    }

    /// A dataset's file of a header and no records is refused: a file given by
    /// mistake (or cut short) would otherwise leave its part of the dataset empty,
    /// said only in a note.
    pub fn refuse_if_empty(&self) -> Result<()> {
        if !self.lines.is_empty() {
            return Ok(());
        }
        Err(Error::input(
            &self.path,
            "the file has a header and no records: nothing to read (nothing was written)",
        ))
    }

    /// Position of the first header field whose squashed name is one of `names`.
    pub fn find(&self, names: &[&str]) -> Option<usize> {
        self.header
            .iter()
            .position(|h| names.contains(&squash(h).as_str()))
    }

    /// Like [`CsvTable::find`], but a missing column, or one named twice, is an input
    /// error.
    pub fn require(&self, label: &str, names: &[&str]) -> Result<usize> {
        let pos = self.find(names).ok_or_else(|| {
            Error::input(
                &self.path,
                format!(
                    "missing required column '{label}'; the header has: {}",
                    self.header.join(", ")
                ),
            )
        })?;
        self.check_named_once(pos, names)?;
        Ok(pos)
    }

    /// An error when a field after `pos` also matches `names`: columns are found by
    /// their names without case, spaces and punctuation, so `Patient Age` and
    /// `patient age` are one column named twice, and which to read is not known.
    pub fn check_named_once(&self, pos: usize, names: &[&str]) -> Result<()> {
        let again = self.header[pos + 1..]
            .iter()
            .find(|h| names.contains(&squash(h).as_str()));
        match again {
            Some(second) => Err(Error::input_at(
                &self.path,
                1,
                Some(second),
                format!(
                    "this column and '{}' name one column (names are compared without case, spaces and punctuation); keep one",
                    self.header[pos]
                ),
            )),
            None => Ok(()),
        }
    }

    /// The values of the field at `pos`, one per record (None for empty or absent).
    pub fn values(&self, pos: usize) -> Result<Vec<Option<&str>>> {
        let col = self.frame.column(&format!("c{pos}"))?.str()?;
        Ok(col
            .iter()
            .map(|v| v.map(str::trim).filter(|s| !s.is_empty()))
            .collect())
    }

    /// The header name of the field at `pos`.
    pub fn name(&self, pos: usize) -> &str {
        self.header.get(pos).map(String::as_str).unwrap_or("")
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the file has no records.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// A header is refused when it is too wide or names a column twice (every later
/// column would be read from the wrong position).
fn check_header(path: &Path, header: &[String]) -> Result<()> {
    if header.len() > MAX_FIELDS {
        return Err(Error::input_at(
            path,
            1,
            None,
            format!(
                "the header has {} fields; more than {MAX_FIELDS} is not a metadata file",
                header.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for h in header.iter().filter(|h| !h.is_empty()) {
        if !seen.insert(h.as_str()) {
            return Err(Error::input_at(
                path,
                1,
                Some(h),
                "this column appears twice in the header",
            ));
        }
    }
    Ok(())
}

/// The file name of `path`, used as `source_file` in `data_issues`.
pub fn source_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Lower-cases and keeps only ASCII letters and digits: `Follow-up #` → `followup`.
pub fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[derive(Debug)]
struct Record {
    line: u64,
    fields: usize,
}

/// What one pass over the data after the header finds.
#[derive(Debug)]
struct Scan {
    /// The records: first line number and field count.
    records: Vec<Record>,
    /// Whether a blank line (outside quotes) must be removed before parsing.
    blank_lines: bool,
}

fn is_blank(segment: &[u8]) -> bool {
    segment.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// One pass over the text after the header: refuses data that is not UTF-8 (Latin-1
/// exports, say) or that has a double quote inside an unquoted field, naming the line
/// and column of the first one; finds the records (empty lines are not records;
/// quoted fields may span lines) and whether there are blank lines. It jumps from one
/// quote, comma or line break to the next (memchr): the bytes between only matter by
/// being blank or not.
fn scan(path: &Path, header: &[String], data: &[u8]) -> Result<Scan> {
    let column = |field: usize| {
        header
            .get(field)
            .map(String::as_str)
            .unwrap_or("(past the header)")
    };
    // An error at byte `at`, naming its line and column.
    let refuse_at = |at: usize, message: String| {
        let (line, field) = position(data, at);
        Error::input_at(path, line, Some(column(field)), message)
    };
    if let Err(e) = std::str::from_utf8(data) {
        let at = e.valid_up_to();
        return Err(refuse_at(
            at,
            format!(
                "not UTF-8 text (byte 0x{:02X}); the file may be Latin-1 or another encoding: save it as UTF-8",
                data[at]
            ),
        ));
    }
    let mut records = Vec::new();
    let mut blank_lines = false;
    let (mut line, mut start_line, mut fields) = (2u64, 2u64, 1usize);
    // `empty`: nothing but blanks since the record began; `field_start`: nothing but
    // blanks since the field began; `after_close`: a quoted field just closed.
    let (mut in_quotes, mut empty, mut field_start, mut after_close) = (false, true, true, false);
    let (mut at, mut opened_at, mut field_begin) = (0, 0, 0);
    // A field longer than MAX_FIELD_BYTES is refused where it ends: no metadata field
    // is near it, and the parser and each issue about it would copy it again.
    let check_field = |begin: usize, end: usize| -> Result<()> {
        if end - begin <= MAX_FIELD_BYTES {
            return Ok(());
        }
        Err(refuse_at(
            begin,
            format!(
                "a field of {} bytes: longer than {} MiB, not a metadata value",
                end - begin,
                MAX_FIELD_BYTES >> 20
            ),
        ))
    };
    while at < data.len() {
        if in_quotes {
            let Some(k) = memchr::memchr2(b'"', b'\n', &data[at..]) else {
                break;
            };
            let i = at + k;
            if data[i] == b'\n' {
                line += 1;
            } else {
                in_quotes = false;
                after_close = true;
            }
            at = i + 1;
            continue;
        }
        let next = memchr::memchr3(b'"', b',', b'\n', &data[at..]).map_or(data.len(), |k| at + k);
        // After a closing quote comes the next field or the line's end (a CR before
        // it): the parser refuses anything else, blanks too, without saying where.
        let line_end = data.get(next).is_none_or(|&b| b == b'\n') && &data[at..next] == b"\r";
        if after_close && at < next && !line_end {
            return Err(refuse_at(
                at,
                format!(
                    "text after a quoted field's closing double quote ({:?}); put it inside the quotes or remove it",
                    String::from_utf8_lossy(&data[at..next.min(at + 20)])
                ),
            ));
        }
        // A quote opens a quoted field only as the field's first byte: after blanks
        // the parser reads it as text (and a comma inside as the field's end).
        if at < next {
            field_start = false;
        }
        if !is_blank(&data[at..next]) {
            empty = false;
            after_close = false;
        }
        let Some(&b) = data.get(next) else { break };
        match b {
            b'"' if after_close || field_start => {
                // Opens a quoted field, or a doubled quote inside one.
                in_quotes = true;
                opened_at = next;
                after_close = false;
                field_start = false;
                empty = false;
            }
            b'"' if is_blank(&data[field_begin..next]) => {
                return Err(refuse_at(
                    next,
                    "a blank before a quoted field's opening double quote; remove it \
                     (the quote must be the field's first character)"
                        .to_string(),
                ));
            }
            b'"' => {
                return Err(refuse_at(
                    next,
                    "a double quote inside a field that does not start with one; \
                     quote the whole field and double the quotes inside (\"a \"\"b\"\" c\")"
                        .to_string(),
                ));
            }
            b',' => {
                check_field(field_begin, next)?;
                field_begin = next + 1;
                fields += 1;
                empty = false;
                field_start = true;
                after_close = false;
            }
            _ => {
                check_field(field_begin, next)?;
                field_begin = next + 1;
                if empty {
                    blank_lines = true;
                } else {
                    push_record(&mut records, path, start_line, fields)?;
                }
                line += 1;
                start_line = line;
                fields = 1;
                empty = true;
                field_start = true;
                after_close = false;
            }
        }
        at = next + 1;
    }
    if in_quotes {
        return Err(refuse_at(
            opened_at,
            "a quoted field that never ends: its closing double quote is missing".to_string(),
        ));
    }
    if !empty {
        check_field(field_begin, data.len())?;
        push_record(&mut records, path, start_line, fields)?;
    }
    Ok(Scan {
        records,
        blank_lines,
    })
}

/// Adds a record, refusing the one past [`MAX_RECORDS`].
fn push_record(records: &mut Vec<Record>, path: &Path, line: u64, fields: usize) -> Result<()> {
    if records.len() == MAX_RECORDS {
        return Err(Error::input_at(
            path,
            line,
            None,
            format!(
                "more than {MAX_RECORDS} records: not a metadata file cxr reads \
                 (ingest holds every row in memory, about 2 KB a record)"
            ),
        ));
    }
    records.push(Record { line, fields });
    Ok(())
}

/// An error naming the first NUL byte of `data` at or after `from`, if any: text has
/// none, wherever it came from (a file, a zip member).
fn refuse_nul(path: &Path, data: &[u8], from: usize) -> Result<()> {
    let Some(k) = memchr::memchr(0, &data[from..]) else {
        return Ok(());
    };
    // Where it is, as a text editor counts: line and column (bytes, from 1).
    let at = from + k;
    let line = memchr::memchr_iter(b'\n', &data[..at]).count() as u64 + 1;
    let column = at - memchr::memrchr(b'\n', &data[..at]).map_or(0, |n| n + 1) + 1;
    Err(Error::input_at(
        path,
        line,
        None,
        format!(
            "not a CSV file (binary data: a NUL byte at byte {at}, column {column} of the line)"
        ),
    ))
}

/// A header name, trimmed; a quoted one holding a bracketed list (`"Bbox
/// [x,y,w,h]"`) as the names of as many columns as the list has items (`Bbox [x`,
/// `y`, `w`, `h]`), as NIH's unquoted header splits it, for a file whose records give
/// a value per item.
fn bracketed_parts(name: &str) -> Vec<String> {
    let bracketed = name
        .find('[')
        .is_some_and(|open| name[open..].contains(',') && name.trim_end().ends_with(']'));
    if bracketed {
        name.split(',').map(|p| p.trim().to_string()).collect()
    } else {
        vec![name.trim().to_string()]
    }
}

/// The 1-based line (the header is line 1) and 0-based field of byte `at` of the
/// data after the header: commas and line breaks inside quoted fields are the field's
/// text, not ends of fields or records (the line is the physical line, as the scan
/// counts it).
fn position(data: &[u8], at: usize) -> (u64, usize) {
    let (mut line, mut field, mut in_quotes) = (2u64, 0usize, false);
    for &b in &data[..at] {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' => {
                line += 1;
                if !in_quotes {
                    field = 0;
                }
            }
            b',' if !in_quotes => field += 1,
            _ => {}
        }
    }
    (line, field)
}

/// Removes blank lines (outside quotes): the parser would read them as records of
/// nulls, while they are not records at all.
fn strip_blank_lines(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_quotes = false;
    let mut line_start = 0;
    let mut blank = true;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'"' => {
                in_quotes = !in_quotes;
                blank = false;
            }
            b'\n' if !in_quotes => {
                let line = &data[line_start..=i];
                match (&mut out, blank) {
                    (Some(o), false) => o.extend_from_slice(line),
                    (None, true) => out = Some(data[..line_start].to_vec()),
                    _ => {}
                }
                line_start = i + 1;
                blank = true;
            }
            b'\r' | b' ' | b'\t' => {}
            _ => blank = false,
        }
    }
    match out {
        None => std::borrow::Cow::Borrowed(data),
        Some(mut o) => {
            if !blank {
                o.extend_from_slice(&data[line_start..]);
            }
            std::borrow::Cow::Owned(o)
        }
    }
}

/// `data` with each record's fields past the header's `width` cut off (outside
/// quotes; the record's line break kept): the parser holds every field it is given,
/// about 500 bytes each, so a record of a million commas took 500 MB.
fn cut_extra_fields(data: &[u8], width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let (mut in_quotes, mut commas, mut cutting) = (false, 0usize, false);
    for &b in data {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                commas += 1;
                cutting |= commas == width;
            }
            b'\n' if !in_quotes => {
                commas = 0;
                cutting = false;
            }
            _ => {}
        }
        if !cutting {
            out.push(b);
        }
    }
    out
}

fn parse_frame(
    path: &Path,
    data: &[u8],
    width: usize,
    fields: Picked,
    expected: usize,
) -> Result<DataFrame> {
    let schema: Schema = (0..width)
        .map(|i| Field::new(format!("c{i}").into(), DataType::String))
        .collect();
    let frame = CsvReadOptions::default()
        .with_has_header(false)
        .with_schema(Some(Arc::new(schema)))
        .with_raise_if_empty(false)
        .with_projection(fields.map(|mut f| {
            f.sort_unstable();
            f.dedup();
            Arc::new(f)
        }))
        .map_parse_options(|o| {
            o.with_missing_is_null(true)
                .with_truncate_ragged_lines(true)
        })
        .into_reader_with_file_handle(std::io::Cursor::new(data))
        .finish()
        .map_err(|e| Error::input(path, format!("not a readable CSV file: {e}")))?;
    if frame.height() != expected {
        return Err(Error::input(
            path,
            format!(
                "CSV parser found {} records where {} non-empty lines were expected; check for unbalanced quotes",
                frame.height(),
                expected
            ),
        ));
    }
    Ok(frame)
}

/// The 1-based line on which the first record whose field `column` (0-based) is
/// `value` starts, and the header's name of that column. Reads at most 256 MiB.
pub fn line_of_value(path: &Path, column: usize, value: &str) -> Option<(u64, String)> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).ok()?;
    let gzip = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    let reader: Box<dyn Read> = if gzip {
        Box::new(crate::input::gzip::decoder(file))
    } else {
        Box::new(file)
    };
    let mut lines = std::io::BufReader::new(reader.take(256 << 20)).split(b'\n');
    let (mut line, mut header) = (0u64, None::<String>);
    loop {
        // A record may span lines inside quotes.
        let start = line + 1;
        let mut record = Vec::new();
        loop {
            let mut piece = lines.next()?.ok()?;
            line += 1;
            if piece.last() == Some(&b'\r') {
                piece.pop();
            }
            record.extend_from_slice(&piece);
            if record.iter().filter(|b| **b == b'"').count() % 2 == 0 {
                break;
            }
            record.push(b'\n');
        }
        let fields = split_record(&String::from_utf8_lossy(&record));
        let field = fields.get(column).cloned().unwrap_or_default();
        match &header {
            None => header = Some(field),
            Some(name) if field == value => return Some((start, name.clone())),
            Some(_) => {}
        }
    }
}

/// Splits one CSV line into fields, honouring double quotes.
pub fn split_record(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Text whose classic Mac line ends (CR only), in a whole file or in some of its
/// lines among LF or CRLF ones, are LF: each ends a record, as pandas reads them (a
/// CR read as part of a field joined two records, and an image was lost).
fn lines_ended(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let lone_cr = |k: usize| bytes[k] == b'\r' && bytes.get(k + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone_cr) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let ended = (0..bytes.len())
        .map(|k| if lone_cr(k) { b'\n' } else { bytes[k] })
        .collect();
    std::borrow::Cow::Owned(ended)
}

/// Reads a file of names, one per line (the official split lists), skipping blank
/// lines. Returns (line, name) pairs.
pub fn read_list(path: &Path) -> Result<Vec<(u64, String)>> {
    let bytes = read_bytes(path)?;
    let bytes = lines_ended(&bytes);
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::input(path, "not a text file (invalid UTF-8)"))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect())
}

/// Checks, before anything is read, that an input is a regular file that can be
/// opened. A pipe (`<(zcat f.gz)`) or a device is refused: an ingest reads each
/// input twice (to parse it and to hash it into the manifest), and two readers of
/// one stream split it between them.
pub fn check_exists(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::input(path, "is a directory, not an input file")),
        Ok(m) if !m.is_file() => Err(Error::input(
            path,
            "is a pipe or a device, not a regular file; give the file itself (gzip files are read as they are) or save the stream to a file first",
        )),
        Ok(_) => std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| Error::input(path, format!("cannot open: {e}"))),
        Err(_) => Err(Error::input(path, "input file not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("h{i}")).collect()
    }

    /// A NUL byte far into bytes that came from an archive's member (not a file the
    /// reader read itself) is binary data, named by its line.
    #[test]
    fn a_nul_byte_anywhere_in_a_members_text_is_refused() {
        let mut text = b"a,b\n".to_vec();
        for _ in 0..1000 {
            text.extend_from_slice(b"xx,yy\n");
        }
        text.extend_from_slice(b"q\0z,1\n");
        let e = CsvTable::from_bytes(Path::new("m.zip"), &text, &mut Issues::default())
            .err()
            .expect("refused");
        let m = e.to_string();
        assert_eq!(e.exit_code(), 2);
        assert!(
            m.contains("m.zip") && m.contains("line 1002") && m.contains("binary"),
            "{m}"
        );
    }

    /// A quoted `"Bbox [x,y,w,h]"` names four columns, as the release's unquoted
    /// header does; other quoted names with commas stay one column.
    #[test]
    fn a_quoted_bracketed_header_name_is_its_items() {
        assert_eq!(
            bracketed_parts("Bbox [x,y,w,h]"),
            ["Bbox [x", "y", "w", "h]"]
        );
        assert_eq!(
            bracketed_parts(" OriginalImage[Width,Height] "),
            ["OriginalImage[Width", "Height]"]
        );
        assert_eq!(bracketed_parts("Sex, as given"), ["Sex, as given"]);
        assert_eq!(bracketed_parts("Width [px]"), ["Width [px]"]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.csv");
        std::fs::write(&p, "Image Index,\"Bbox [x,y,w,h]\"\na.png,1,2,3,4\n").unwrap();
        let t = CsvTable::read(&p, &mut Issues::default()).unwrap();
        let h = t.find(&["h"]).unwrap();
        assert_eq!(t.values(h).unwrap(), [Some("4")]);
        // Records of one value under it: the name is one column's.
        std::fs::write(&p, "Image Index,\"Size [w,h]\"\na.png,7\n").unwrap();
        let t = CsvTable::read(&p, &mut Issues::default()).unwrap();
        assert_eq!(t.header, ["Image Index", "Size [w,h]"]);
        assert_eq!(t.values(1).unwrap(), [Some("7")]);
    }

    #[test]
    fn fields_past_the_header_are_cut_outside_quotes() {
        let data = b"a,b,c,d\n\"x,\ny\",2\ne,f\n\"g\",\"h,\",\"i\nj\"\n";
        assert_eq!(
            cut_extra_fields(data, 2),
            b"a,b\n\"x,\ny\",2\ne,f\n\"g\",\"h,\"\n".to_vec()
        );
    }

    #[test]
    fn scan_finds_records_lines_and_blank_lines() {
        // Line 2: a record; 3: blank (spaces); 4–5: one record whose quoted field
        // spans a line break and holds a doubled quote and commas; 6: three fields;
        // a last record without a line break on 7.
        let data = b"a,b\n  \n\"x\ny \"\"q\"\", z\",c\n1,2,3\nlast,one";
        let s = scan(Path::new("t.csv"), &header(2), data).unwrap();
        let got: Vec<(u64, usize)> = s.records.iter().map(|r| (r.line, r.fields)).collect();
        assert_eq!(got, [(2, 2), (4, 2), (6, 3), (7, 2)]);
        assert!(s.blank_lines);
        let s = scan(Path::new("t.csv"), &header(2), b"a,b\n\"c\",d\n").unwrap();
        assert_eq!(s.records.len(), 2);
        assert!(!s.blank_lines);
    }

    /// The message of `scan`'s error on `data` under a header of `fields` fields.
    fn scan_error(fields: usize, data: &[u8]) -> String {
        scan(Path::new("t.csv"), &header(fields), data)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn scan_names_the_line_and_column_of_a_stray_quote_or_bad_byte() {
        let e = scan_error(3, b"a,b,c\nd,e\"f,g\n");
        assert!(
            e.contains("t.csv") && e.contains("line 3") && e.contains("h1"),
            "{e}"
        );
        let e = scan_error(3, b"a,b,c\nd,e,caf\xE9\n");
        assert!(
            e.contains("line 3") && e.contains("h2") && e.contains("0xE9"),
            "{e}"
        );
        // A quote after blanks at a field's start: the parser would read it as text
        // and a comma inside it as the field's end, so it is refused where it is.
        let e = scan_error(3, b"a,b,c\nd, \"e, f\",g\n");
        assert!(
            e.contains("line 3") && e.contains("h1") && e.contains("blank before"),
            "{e}"
        );
        // The column after a quoted field holding commas (and a line break) is
        // counted by fields, not by commas.
        let e = scan_error(3, b"a,b,c\n\"d,\nd\",e\"f,g\n");
        assert!(e.contains("line 4") && e.contains("h1"), "{e}");
        // Text or blanks after a closing quote (the parser refuses both), but a CR
        // before the line's end is the line's end.
        for data in [&b"a,b,c\nd,\"e\"x,f\n"[..], b"a,b,c\nd,\"e\" ,f\n"] {
            let e = scan_error(3, data);
            assert!(
                e.contains("line 3") && e.contains("h1") && e.contains("after a quoted field"),
                "{e}"
            );
        }
        assert!(scan(Path::new("t.csv"), &header(2), b"a,b\r\n\"c\",\"d\"\r\n").is_ok());
        assert!(
            scan(
                Path::new("t.csv"),
                &header(2),
                b"a,b\n\"c\",\"d \"\"e\"\"\""
            )
            .is_ok()
        );
        // A quote that opens a field and never closes names where it opened.
        let e = scan_error(3, b"a,b,c\nd,\"e,f\ng,h,i\n");
        assert!(
            e.contains("line 3") && e.contains("h1") && e.contains("never ends"),
            "{e}"
        );
    }
}
