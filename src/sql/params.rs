//! Saved query files: a header of `-- @description` and `-- @param` comment lines
//! over SQL with `$name` placeholders, bound through DataFusion's parameter binding.

use std::path::{Path, PathBuf};

use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};

/// The type of a saved-query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Float,
    /// Text.
    Text,
    /// true/false.
    Bool,
    /// One of the 14 findings, matched case-insensitively and bound in its
    /// canonical spelling (`any` passes through for queries that accept it, `none`
    /// or nothing as '').
    Finding,
    /// `M`, `F` or `any`, case-insensitively.
    Sex,
    /// A view (PA, AP, AP_SUPINE, LATERAL, OTHER) or `any`, case-insensitively.
    View,
    /// A dataset name (nih, chexpert, ...) or `any`, case-insensitively.
    Dataset,
}

/// The values of the enumerated types, canonical spelling first; `any` is always
/// accepted too.
const SEXES: [&str; 2] = ["M", "F"];
const VIEWS: [&str; 5] = ["PA", "AP", "AP_SUPINE", "LATERAL", "OTHER"];

/// The canonical spelling of `s` among `known` (or `any`), case-insensitively.
fn one_of(s: &str, known: &[&str]) -> Option<ScalarValue> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("any") {
        return Some(ScalarValue::Utf8(Some("any".into())));
    }
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s))
        .map(|k| ScalarValue::Utf8(Some(k.to_string())))
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        match s.to_ascii_uppercase().as_str() {
            "INT" | "INTEGER" | "BIGINT" => Some(ParamType::Int),
            "FLOAT" | "DOUBLE" | "REAL" => Some(ParamType::Float),
            "TEXT" | "STRING" | "VARCHAR" => Some(ParamType::Text),
            "BOOL" | "BOOLEAN" => Some(ParamType::Bool),
            "FINDING" => Some(ParamType::Finding),
            "SEX" => Some(ParamType::Sex),
            "VIEW" => Some(ParamType::View),
            "DATASET" => Some(ParamType::Dataset),
            _ => None,
        }
    }

    /// The name used in query files.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int => "INT",
            ParamType::Float => "FLOAT",
            ParamType::Text => "TEXT",
            ParamType::Bool => "BOOL",
            ParamType::Finding => "FINDING",
            ParamType::Sex => "SEX",
            ParamType::View => "VIEW",
            ParamType::Dataset => "DATASET",
        }
    }

    /// The values a parameter of this type takes, for errors; empty if not a list.
    fn known(self) -> String {
        let list = |v: &[&str]| format!(" (one of: {}, any)", v.join(", "));
        match self {
            ParamType::Finding => format!(
                " (one of: {}; any; none)",
                crate::findings::FINDINGS.join(", ")
            ),
            ParamType::Sex => list(&SEXES),
            ParamType::View => list(&VIEWS),
            ParamType::Dataset => list(&crate::datasets::ALL),
            _ => String::new(),
        }
    }

    /// Parses a value given on the command line (see [`underflows`]).
    pub fn value(self, s: &str) -> Option<ScalarValue> {
        match self {
            ParamType::Int => s.trim().parse::<i64>().ok().map(ScalarValue::from),
            // Finite only: NaN compares with nothing, and `1e400` or `inf` is no
            // value a query means (PostgreSQL refuses 1e400 as out of range).
            // Nor one that underflows to 0 (`1e-400`): PostgreSQL refuses it too.
            ParamType::Float => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && !underflows(s.trim(), *x))
                .map(ScalarValue::from),
            ParamType::Text => Some(ScalarValue::Utf8(Some(s.to_string()))),
            ParamType::Bool => match s.trim().to_ascii_lowercase().as_str() {
                // PostgreSQL's spellings of a boolean.
                "true" | "t" | "yes" | "y" | "on" | "1" => Some(ScalarValue::Boolean(Some(true))),
                "false" | "f" | "no" | "n" | "off" | "0" => Some(ScalarValue::Boolean(Some(false))),
                _ => None,
            },
            ParamType::Finding if s.trim().eq_ignore_ascii_case("any") => {
                Some(ScalarValue::Utf8(Some("any".into())))
            }
            ParamType::Finding if s.trim().is_empty() || s.trim().eq_ignore_ascii_case("none") => {
                Some(ScalarValue::Utf8(Some(String::new())))
            }
            ParamType::Finding => {
                crate::findings::lookup(s).map(|f| ScalarValue::Utf8(Some(f.to_string())))
            }
            ParamType::Sex => one_of(s, &SEXES).or_else(|| {
                // male and female too, as `--sex` takes them.
                let sex = crate::cohort::parse_sex(s).ok()?;
                Some(ScalarValue::Utf8(Some(sex.to_string())))
            }),
            ParamType::View => one_of(s, &VIEWS),
            ParamType::Dataset => one_of(s, &crate::datasets::ALL),
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// Name, without the `$`.
    pub name: String,
    /// Declared type.
    pub ty: ParamType,
    /// Default value as written, if any.
    pub default: Option<String>,
    /// For INT and FLOAT: the least and greatest values allowed (`1..`, `0..120`), as
    /// written and parsed.
    pub range: Option<(String, Option<f64>, Option<f64>)>,
}

impl Param {
    /// Why `value` is outside the declared range, if it is.
    fn out_of_range(&self, value: &ScalarValue) -> Option<String> {
        let (text, min, max) = self.range.as_ref()?;
        let v = match value {
            ScalarValue::Int64(Some(v)) => *v as f64,
            ScalarValue::Float64(Some(v)) => *v,
            _ => return None,
        };
        let below = min.is_some_and(|m| v < m);
        let above = max.is_some_and(|m| v > m);
        (below || above).then(|| format!("outside the range {text} of parameter `{}`", self.name))
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.ty.name())?;
        if let Some((range, _, _)) = &self.range {
            write!(f, " {range}")?;
        }
        if let Some(d) = &self.default {
            write!(f, " = {d}")?;
        }
        Ok(())
    }
}

/// Query files larger than this are refused (a saved query is a page of SQL).
/// The most SQL a query file may hold: as much as any SQL text cxr reads.
const MAX_QUERY_BYTES: u64 = crate::input::text::MAX_SQL_BYTES;

/// Reads a query file of at most [`MAX_QUERY_BYTES`] UTF-8 bytes.
fn read_capped(path: &Path) -> Result<String> {
    use crate::input::text::{TextError, read_all};
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        // A FIFO would block the read; a device may never end.
        return Err(Error::input(path, "not a regular file: not a query file"));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Usage(format!("{}: cannot read query file: {e}", path.display())))?;
    read_all(file, MAX_QUERY_BYTES).map_err(|e| match e {
        TextError::TooLarge(_) => Error::input(
            path,
            format!(
                "larger than {} MiB: not a query file",
                MAX_QUERY_BYTES >> 20
            ),
        ),
        TextError::NotUtf8(line) => {
            Error::input_at(path, line, None, "not UTF-8 text: not a query file")
        }
        TextError::Io(e) => {
            Error::Usage(format!("{}: cannot read query file: {e}", path.display()))
        }
    })
}

/// A saved query file.
#[derive(Debug, Clone)]
pub struct QueryFile {
    /// File stem (`effusion_cohort`).
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// The `@description` text.
    pub description: String,
    /// Declared parameters, in order.
    pub params: Vec<Param>,
    /// The whole file text (comments are valid SQL).
    pub sql: String,
}

impl QueryFile {
    /// Reads and checks a query file: every `$name` used must be declared.
    /// The query file, if its SQL parses as one or more statements: a `.sql` file
    /// of something else is not a saved query to list.
    fn parses(self, path: &Path) -> Result<QueryFile> {
        match datafusion::sql::parser::DFParser::parse_sql(&self.sql) {
            Ok(statements) if !statements.is_empty() => Ok(self),
            Ok(_) => Err(Error::input(
                path,
                "not a saved query: it holds no SQL statement",
            )),
            Err(e) => Err(Error::input(
                path,
                format!("not a saved query: {}", Error::from(e)),
            )),
        }
    }

    pub fn load(path: &Path) -> Result<QueryFile> {
        let sql = read_capped(path)?;
        let mut description = String::new();
        let mut params: Vec<Param> = Vec::new();
        for (i, line) in sql.lines().enumerate() {
            let Some(rest) = line.trim().strip_prefix("--") else {
                continue;
            };
            let rest = rest.trim();
            if let Some(d) = rest.strip_prefix("@description") {
                if !description.is_empty() {
                    description.push(' ');
                }
                description.push_str(d.trim());
            } else if let Some(p) = rest.strip_prefix("@param") {
                if let Some(range) = empty_range(p) {
                    return Err(Error::input_at(
                        path,
                        i as u64 + 1,
                        None,
                        format!("@param range `{range}` holds no value: its MIN is above its MAX"),
                    ));
                }
                let param = parse_param(p).ok_or_else(|| {
                    Error::input_at(
                        path,
                        i as u64 + 1,
                        None,
                        format!("bad @param line `{}`: expected `-- @param NAME INT|FLOAT|TEXT|BOOL|FINDING|SEX|VIEW|DATASET [MIN..MAX] [= DEFAULT]` (a range only for INT and FLOAT)", line.trim()),
                    )
                })?;
                if let Some(d) = &param.default
                    && param
                        .ty
                        .value(d)
                        .is_none_or(|v| param.out_of_range(&v).is_some())
                {
                    return Err(Error::input_at(
                        path,
                        i as u64 + 1,
                        None,
                        format!(
                            "default `{d}` of ${} is not {}{}",
                            param.name,
                            crate::output::with_article(param.ty.name()),
                            param
                                .range
                                .as_ref()
                                .map_or(String::new(), |(r, _, _)| format!(" in {r}"))
                        ),
                    ));
                }
                if params.iter().any(|p: &Param| p.name == param.name) {
                    return Err(Error::input_at(
                        path,
                        i as u64 + 1,
                        None,
                        format!("${} is declared twice", param.name),
                    ));
                }
                params.push(param);
            }
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let qf = QueryFile {
            name,
            path: path.to_path_buf(),
            description,
            params,
            sql,
        };
        let used = placeholders(&strip_comments(&qf.sql, true));
        for name in &used {
            if name.chars().all(|c| c.is_ascii_digit()) {
                return Err(Error::input(
                    path,
                    format!(
                        "uses ${name}: a saved query names its parameters (`-- @param NAME TYPE`, then `$NAME`)"
                    ),
                ));
            }
            if !qf.params.iter().any(|p| &p.name == name) {
                return Err(Error::input(
                    path,
                    format!("uses ${name} but declares no `-- @param {name} TYPE`"),
                ));
            }
        }
        // A parameter the query never reads would be a flag that changes nothing.
        if let Some(unused) = qf.params.iter().find(|p| !used.contains(&p.name)) {
            return Err(Error::input(
                path,
                format!(
                    "declares ${} but the query never uses it; use it as `${}` or remove its `@param` line",
                    unused.name, unused.name
                ),
            ));
        }
        if crate::sql::no_statement(&qf.sql) {
            return Err(Error::input(path, "holds no SQL statement to run"));
        }
        Ok(qf)
    }

    /// Binds command-line `NAME=VALUE` pairs and defaults to the declared parameters.
    /// A `min_X` above its `max_X` (`min_age=60 max_age=40`) is an empty range, refused
    /// as `--age 60..40` is, rather than answered with no rows.
    fn check_ranges(&self, values: &[(String, ScalarValue)]) -> Result<()> {
        let number = |name: &str| {
            values
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| match v {
                    ScalarValue::Int64(Some(i)) => Some(*i as f64),
                    ScalarValue::Float64(Some(f)) => Some(*f),
                    _ => None,
                })
        };
        for (name, _) in values {
            let Some(what) = name.strip_prefix("min_") else {
                continue;
            };
            let max = format!("max_{what}");
            if let (Some(lo), Some(hi)) = (number(name), number(&max))
                && lo > hi
            {
                return Err(self.param_error(format!(
                    "`{name}` ({lo}) is above `{max}` ({hi}): no value is in the range"
                )));
            }
        }
        Ok(())
    }

    pub fn bind(&self, given: &[(String, String)]) -> Result<Vec<(String, ScalarValue)>> {
        for (i, (name, _)) in given.iter().enumerate() {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(self.param_error(format!("unknown parameter `{name}`")));
            }
            if given[..i].iter().any(|(n, _)| n == name) {
                return Err(self.param_error(format!("parameter `{name}` given twice")));
            }
        }
        let mut out = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let raw = given
                .iter()
                .rev()
                .find(|(n, _)| n == &p.name)
                .map(|(_, v)| v.as_str())
                .or(p.default.as_deref());
            let Some(raw) = raw else {
                return Err(self.param_error(format!("missing value for parameter `{}`", p.name)));
            };
            let value = p.ty.value(raw).ok_or_else(|| {
                self.param_error(format!(
                    "`{raw}` is not a valid {} for parameter `{}`{}",
                    p.ty.name(),
                    p.name,
                    p.ty.known()
                ))
            })?;
            if let Some(why) = p.out_of_range(&value) {
                return Err(self.param_error(format!("`{raw}` is {why}")));
            }
            if let Some(special) = self.untested_special(p, &value) {
                return Err(self.param_error(format!(
                    "`{raw}` is not a value parameter `{}` takes here: the query never tests for `{special}` (`${} = {}`), so it would match nothing",
                    p.name,
                    p.name,
                    if special == "none" { "''" } else { "'any'" }
                )));
            }
            out.push((p.name.clone(), value));
        }
        self.check_ranges(&out)?;
        Ok(out)
    }

    /// `any` (or `none`, FINDING's empty value) bound to `p` where the SQL never
    /// compares `$p` with it: the query would treat it as a value and match nothing.
    fn untested_special(&self, p: &Param, value: &ScalarValue) -> Option<&'static str> {
        let ScalarValue::Utf8(Some(text)) = value else {
            return None;
        };
        let (special, literal) = match (p.ty, text.as_str()) {
            (ParamType::Finding | ParamType::Sex | ParamType::View | ParamType::Dataset, "any") => {
                ("any", "'any'")
            }
            (ParamType::Finding, "") => ("none", "''"),
            _ => return None,
        };
        // Tested: `$p = 'any'`, `$p <> 'any'`, `'any' = $p`, `lower($p) = 'any'`,
        // `$p IN ('any', ...)` (comments left out, blanks as one space).
        let sql = strip_comments(&self.sql, false)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let name = format!("${}", p.name);
        const OPERATORS: [&str; 3] = ["=", "<>", "!="];
        let tested = sql.match_indices(&name).any(|(at, _)| {
            let after = &sql[at + name.len()..];
            if after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                return false; // another parameter's name
            }
            let after = after.trim_start_matches([')', ' ']);
            let compared = OPERATORS.iter().any(|op| {
                after
                    .strip_prefix(op)
                    .is_some_and(|r| r.trim_start().starts_with(literal))
            });
            let listed = after.get(..2).is_some_and(|s| s.eq_ignore_ascii_case("IN"))
                && after[2..]
                    .trim_start()
                    .strip_prefix('(')
                    .and_then(|r| r.split(')').next())
                    .is_some_and(|list| list.split(',').any(|v| v.trim() == literal));
            let before = sql[..at]
                .trim_end_matches(['(', ' '])
                .trim_end_matches(|c: char| c.is_alphanumeric() || c == '_')
                .trim_end_matches(['(', ' ']);
            let compared_before = OPERATORS.iter().any(|op| {
                before
                    .strip_suffix(op)
                    .is_some_and(|r| r.trim_end().ends_with(literal))
            });
            compared || listed || compared_before
        });
        (!tested).then_some(special)
    }

    fn param_error(&self, msg: String) -> Error {
        Error::Usage(format!("{}: {msg}\n{}", self.path.display(), self.usage()))
    }

    /// A description of the parameters, for errors and `--list`.
    pub fn usage(&self) -> String {
        if self.params.is_empty() {
            return format!("{} takes no parameters", self.name);
        }
        let lines: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("  --param {p}"))
            .collect();
        format!("parameters of {}:\n{}", self.name, lines.join("\n"))
    }
}

/// Parses `NAME TYPE [MIN..MAX] [= DEFAULT]`.
fn parse_param(s: &str) -> Option<Param> {
    let (decl, default) = match s.split_once('=') {
        Some((d, v)) => (d, Some(unquote(v.trim()))),
        None => (s, None),
    };
    let mut words = decl.split_whitespace();
    let name = words.next()?.trim_start_matches('$').to_string();
    let ty = ParamType::parse(words.next()?)?;
    let range = match words.next() {
        Some(r) if matches!(ty, ParamType::Int | ParamType::Float) => Some(parse_range(r)?),
        Some(_) => return None,
        None => None,
    };
    // A name as `$name` reads it: a letter or `_` first.
    let named = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if words.next().is_some() || !named {
        return None;
    }
    Some(Param {
        name,
        ty,
        default,
        range,
    })
}

/// The range of a `@param` declaration whose MIN is above its MAX (`10..1`).
fn empty_range(declaration: &str) -> Option<&str> {
    let declaration = declaration.split('=').next()?;
    let range = declaration.split_whitespace().nth(2)?;
    let (lo, hi) = range.split_once("..")?;
    let (lo, hi) = (lo.parse::<f64>().ok()?, hi.parse::<f64>().ok()?);
    (lo > hi).then_some(range)
}

/// `MIN..MAX`, either end optional but not both.
fn parse_range(r: &str) -> Option<(String, Option<f64>, Option<f64>)> {
    let (lo, hi) = r.split_once("..")?;
    let end = |v: &str| -> Option<Option<f64>> {
        if v.is_empty() {
            Some(None)
        } else {
            v.parse::<f64>().ok().filter(|v| v.is_finite()).map(Some)
        }
    };
    let (lo, hi) = (end(lo)?, end(hi)?);
    if lo.is_none() && hi.is_none() || lo.zip(hi).is_some_and(|(l, h)| l > h) {
        return None;
    }
    Some((r.to_string(), lo, hi))
}

/// A default value without its quotes, a doubled quote inside it read as one
/// (`'it''s'` is `it's`).
fn unquote(s: &str) -> String {
    for quote in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(quote).and_then(|s| s.strip_suffix(quote)) {
            return inner.replace(&format!("{quote}{quote}"), &quote.to_string());
        }
    }
    s.to_string()
}

/// SQL text without its comments (`--` to the line's end, `/* */`, nested as
/// PostgreSQL nests them). With `blank_strings`, each string literal becomes `''` and
/// each quoted name `""`, so that placeholders are found only in code; otherwise they
/// are kept as written (what a `$name` is compared with). A quote doubled inside a
/// string or name is part of it.
fn strip_comments(sql: &str, blank_strings: bool) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let mut text = String::from(c);
                while let Some(d) = chars.next() {
                    text.push(d);
                    if d == c {
                        if chars.peek() == Some(&c) {
                            text.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                if blank_strings {
                    out.push(c);
                    out.push(c);
                } else {
                    out.push_str(&text);
                }
            }
            '$' if dollar_tag(chars.clone()).is_some() => {
                // A dollar-quoted string (`$$text$$`, `$tag$text$tag$`): no comment
                // and no placeholder inside it.
                let tag = dollar_tag(chars.clone()).unwrap_or_default();
                let delimiter = format!("${tag}$");
                let mut text = delimiter.clone();
                chars.nth(tag.chars().count());
                while !text[delimiter.len()..].ends_with(&delimiter) {
                    let Some(d) = chars.next() else { break };
                    text.push(d);
                }
                if blank_strings {
                    out.push_str("''");
                } else {
                    out.push_str(&text);
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut depth = 1;
                let mut previous = ' ';
                while depth > 0 {
                    let Some(d) = chars.next() else { break };
                    match (previous, d) {
                        ('/', '*') => (depth, previous) = (depth + 1, ' '),
                        ('*', '/') => (depth, previous) = (depth - 1, ' '),
                        _ => previous = d,
                    }
                    if d == '\n' {
                        out.push('\n');
                    }
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The tag of a dollar quote opening after a `$` (`$$` → "", `$body$` → "body"), or
/// None when the `$` starts a placeholder (`$age`) or is alone.
fn dollar_tag(mut after: impl Iterator<Item = char>) -> Option<String> {
    let mut tag = String::new();
    for c in after.by_ref() {
        match c {
            '$' => return Some(tag),
            c if c.is_alphabetic() || c == '_' || (c.is_ascii_digit() && !tag.is_empty()) => {
                tag.push(c)
            }
            _ => return None,
        }
    }
    None
}

/// The distinct `$name` placeholders in SQL text.
fn placeholders(sql: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        let tail = &rest[i + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// Where saved queries are looked up: `$CXR_QUERIES`, `./queries`, and the
/// `queries/` of the source tree cxr was built from.
pub fn query_dirs() -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("CXR_QUERIES").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if !d.is_dir() {
            return Err(Error::Usage(format!(
                "CXR_QUERIES={}: no such folder of saved queries",
                d.display()
            )));
        }
        dirs.push(d);
    }
    dirs.push(PathBuf::from("queries"));
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries");
    if !dirs.contains(&shipped) {
        dirs.push(shipped);
    }
    Ok(dirs)
}

/// Finds a query by file path or by name in the query directories.
pub fn resolve(name: &str) -> Result<PathBuf> {
    let direct = Path::new(name);
    if direct.is_file() {
        return Ok(direct.to_path_buf());
    }
    let stem = name.strip_suffix(".sql").unwrap_or(name);
    let dirs = query_dirs()?;
    for d in &dirs {
        let p = d.join(format!("{stem}.sql"));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Usage(format!(
        "no saved query `{name}`: not a file, and not in {}; `cxr run --list` shows the saved queries",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Every saved query in the query directories (first directory wins on a name),
/// and the `.sql` files that are not readable queries (each an error naming the
/// file: one foreign file does not hide the others).
pub fn list() -> Result<(Vec<QueryFile>, Vec<Error>)> {
    let mut out: Vec<QueryFile> = Vec::new();
    let mut unreadable = Vec::new();
    for d in query_dirs()? {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        paths.sort();
        for p in paths {
            match QueryFile::load(&p).and_then(|q| q.parses(&p)) {
                Ok(q) if !out.iter().any(|o| o.name == q.name) => out.push(q),
                Ok(_) => {}
                Err(e) => unreadable.push(e),
            }
        }
    }
    Ok((out, unreadable))
}

/// Whether `text`, read as `value`, lost all its digits: a zero from nonzero digits
/// (`1e-400`), as PostgreSQL's `float8in` refuses it ("out of range").
fn underflows(text: &str, value: f64) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    value == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params() {
        let p = parse_param(" min_age INT = 40").unwrap();
        assert_eq!(
            (p.name.as_str(), p.ty, p.default.as_deref()),
            ("min_age", ParamType::Int, Some("40"))
        );
        let p = parse_param("sex TEXT = 'F'").unwrap();
        assert_eq!(p.default.as_deref(), Some("F"));
        assert!(parse_param("x NUMBER").is_none());
    }

    #[test]
    fn named_values_match_case_insensitively_and_refuse_typos() {
        let text = |v: Option<ScalarValue>| match v {
            Some(ScalarValue::Utf8(Some(s))) => Some(s),
            _ => None,
        };
        assert_eq!(text(ParamType::Sex.value("f")).as_deref(), Some("F"));
        assert_eq!(text(ParamType::Sex.value("Any")).as_deref(), Some("any"));
        assert_eq!(text(ParamType::Sex.value("Female")).as_deref(), Some("F"));
        assert_eq!(ParamType::Sex.value("fem"), None);
        assert_eq!(text(ParamType::View.value("pa")).as_deref(), Some("PA"));
        assert_eq!(
            text(ParamType::View.value("ap_supine")).as_deref(),
            Some("AP_SUPINE")
        );
        assert_eq!(ParamType::View.value("PAA"), None);
        assert_eq!(
            text(ParamType::Dataset.value("CheXpert")).as_deref(),
            Some("chexpert")
        );
        assert_eq!(ParamType::Dataset.value("chexpret"), None);
        // The one list of names: NIH, then the datasets `--dataset` reads.
        assert_eq!(crate::datasets::ALL[1..], crate::datasets::readable());
        assert_eq!(
            text(ParamType::Finding.value("pneumothorax")).as_deref(),
            Some("Pneumothorax")
        );
        assert_eq!(text(ParamType::Finding.value("none")).as_deref(), Some(""));
        assert_eq!(ParamType::Finding.value("Pneumothorx"), None);
    }

    #[test]
    fn a_parameter_declared_or_given_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let twice = dir.path().join("twice.sql");
        std::fs::write(
            &twice,
            "-- @param n INT = 1\n-- @param n INT = 2\nSELECT $n",
        )
        .unwrap();
        let e = QueryFile::load(&twice).unwrap_err().to_string();
        assert!(e.contains("declared twice") && e.contains("line 2"), "{e}");
        let once = dir.path().join("once.sql");
        std::fs::write(&once, "-- @param n INT = 1\nSELECT $n").unwrap();
        let q = QueryFile::load(&once).unwrap();
        let given = [
            ("n".to_string(), "1".to_string()),
            ("n".to_string(), "2".to_string()),
        ];
        assert!(
            q.bind(&given)
                .unwrap_err()
                .to_string()
                .contains("given twice")
        );
    }

    #[test]
    fn any_and_none_only_where_the_query_tests_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.sql");
        std::fs::write(
            &p,
            "-- @param f FINDING = Effusion\n-- @param g FINDING = none\n-- @param v VIEW = any\n\
             -- @param s SEX = any\n-- @param d DATASET = any\n\
             -- a comment: $f = 'any'\n\
             SELECT 1 WHERE array_has(l, $f) AND ($g = '' OR NOT array_has(l, $g)) AND ('any' =  $v OR v = $v) \
             AND (lower($s) <> 'any' OR $d IN ('x', 'any'))",
        )
        .unwrap();
        let q = QueryFile::load(&p).unwrap();
        let bind = |name: &str, value: &str| q.bind(&[(name.into(), value.into())]);
        for (name, value) in [
            ("g", "none"),
            ("v", "any"),
            ("f", "Edema"),
            ("s", "any"),
            ("d", "any"),
        ] {
            assert!(bind(name, value).is_ok(), "{name}={value}");
        }
        for (name, value) in [("f", "any"), ("f", "none"), ("g", "any")] {
            let e = bind(name, value).unwrap_err().to_string();
            assert!(e.contains("never tests for"), "{name}={value}: {e}");
        }
    }

    #[test]
    fn finds_placeholders_outside_comments_and_strings() {
        let sql = "-- @param a INT\nSELECT $a, '$notme' FROM t WHERE x = $b_2 AND y = $a";
        assert_eq!(placeholders(&strip_comments(sql, true)), vec!["a", "b_2"]);
        // Block comments (a quote in one opens nothing, nested ones close in turn),
        // quoted names and doubled quotes.
        let sql = "/* don't /* $c */ $d */ SELECT $a AS \"a$y\", 'it''s $e' || $b";
        assert_eq!(placeholders(&strip_comments(sql, true)), vec!["a", "b"]);
        // Dollar quotes hold neither placeholders nor comments; a `$` that opens
        // none is a placeholder's.
        let sql = "SELECT $$ $c -- $$, $tag$ it's $$ $d $tag$ || $a, $e";
        assert_eq!(placeholders(&strip_comments(sql, true)), vec!["a", "e"]);
        assert_eq!(strip_comments("SELECT $$--x$$", false), "SELECT $$--x$$");
        assert_eq!(unquote("'it''s'"), "it's");
        assert_eq!(unquote("\"a\"\"b\""), "a\"b");
        assert_eq!(unquote("plain"), "plain");
    }

    #[test]
    fn ranges_bound_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let file = |text: &str| {
            let p = dir.path().join("q.sql");
            std::fs::write(&p, text).unwrap();
            QueryFile::load(&p)
        };
        let q =
            file("-- @param n INT 1..10 = 5\n-- @param x FLOAT ..0.5 = 0\nSELECT $n, $x").unwrap();
        let bind = |n: &str, x: &str| q.bind(&[("n".into(), n.into()), ("x".into(), x.into())]);
        assert!(bind("1", "0.5").is_ok() && bind("10", "-3").is_ok());
        for (n, x) in [("0", "0"), ("11", "0"), ("5", "0.6")] {
            let e = bind(n, x).unwrap_err().to_string();
            assert!(e.contains("outside the range"), "{e}");
        }
        assert!(
            q.usage().contains("--param n INT 1..10 = 5"),
            "{}",
            q.usage()
        );
        // A default outside its range, a range on TEXT, an empty or inverted range.
        for bad in [
            "-- @param n INT 1.. = 0\nSELECT $n",
            "-- @param s TEXT 1..2\nSELECT $s",
            "-- @param n INT ..\nSELECT $n",
            "-- @param n INT 5..1\nSELECT $n",
        ] {
            assert!(file(bad).is_err(), "{bad}");
        }
    }
}
