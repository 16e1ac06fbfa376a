//! The one error type of cxr and its exit codes.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in cxr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file that cannot be used at all (missing, corrupt, wrong shape).
    #[error("{}{}: {message}", path.display(), location(*line, column.as_deref()))]
    Input {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line, where one applies (the header is line 1).
        line: Option<u64>,
        /// The source column, where one applies.
        column: Option<String>,
        /// What is wrong and what to do about it.
        message: String,
    },
    /// A bad command line: flags, parameters, names.
    #[error("{0}")]
    Usage(String),
    /// The warehouse is missing or unreadable.
    #[error("{0}")]
    Warehouse(String),
    /// A query failed to plan or run.
    #[error("{0}")]
    Query(String),
    /// A file system operation failed.
    #[error("{context}: {}", io_text(source))]
    Io {
        /// What cxr was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error inside polars.
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
    /// An error inside DataFusion.
    #[error("{}", plain(.0))]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An error inside arrow.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// An error inside the parquet crate.
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// A bug: a panic caught at the top, with its message.
    #[error("{0}")]
    Internal(String),
}

/// A DataFusion error in plain words: its message without DataFusion's category
/// prefixes ("Error during planning: "), a Rust debug print of the parser's error, or
/// the catalog and schema every table is in ("table 'datafusion.public.x'").
fn plain(e: &datafusion::error::DataFusionError) -> String {
    let text = words(e).replace("'datafusion.public.", "'");
    if let Some(located) = csv_value_located(&text) {
        return located;
    }
    planning_in_words(&text).unwrap_or_else(|| unqualified_fields(&text))
}

/// A result column's name as the user types it: a column without its table
/// (`images.nodule`: `nodule`), an expression without the tables that qualify its
/// columns (`sum(images.age)`: `sum(age)`).
fn result_name(name: &str) -> String {
    if name.contains('(') {
        without_qualifiers(name)
    } else {
        unqualified(name)
    }
}

/// An expression's name without the tables that qualify its columns:
/// `sum(images.age)` is `sum(age)`.
fn without_qualifiers(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut word_start = 0;
    for c in name.chars() {
        let word = &out[word_start..];
        if c == '.' && word.starts_with(|w: char| w.is_alphabetic() || w == '_') {
            out.truncate(word_start);
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            word_start = out.len();
        }
    }
    out
}

/// An expression's text without its casts, which do not change a result's name:
/// `sum(CAST(age AS Int64))` is `sum(age)`.
fn without_casts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("CAST(") {
        out.push_str(&rest[..at]);
        let inside = &rest[at + "CAST(".len()..];
        let Some(end) = closing_parenthesis(inside) else {
            out.push_str(&rest[at..]);
            return out;
        };
        let cast = &inside[..end];
        let value = cast.rsplit_once(" AS ").map_or(cast, |(value, _)| value);
        out.push_str(&without_casts(value));
        rest = &inside[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Where the parenthesis open before `text` closes.
fn closing_parenthesis(text: &str) -> Option<usize> {
    let mut depth = 1;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => {}
        }
    }
    None
}

/// A column name without its table or alias (`images.nodule`, `i.nodule`: `nodule`).
fn unqualified(name: &str) -> String {
    let name = name.trim();
    // A quoted field (`'f.csv'."Image Index"`, `"a.b"`) is the last quoted part, dots
    // and all; an unquoted one what follows the last dot.
    if let Some(quoted) = name.strip_suffix('"')
        && let Some(open) = quoted.rfind('"')
    {
        return quoted[open + 1..].to_string();
    }
    name.rsplit_once('.')
        .map_or(name, |(_, field)| field)
        .to_string()
}

/// "No field named nope. Did you mean 'i.nodule'? Valid fields are i.image_index, …,
/// p.mean": said as "no column `nope` (did you mean `nodule`?); the columns are:
/// image_index, …, mean". The qualifiers are the tables or the aliases of the SQL cxr
/// built around a `--where`; the names alone are what to type, each once.
fn unqualified_fields(message: &str) -> String {
    let Some(rest) = message
        .find("No field named ")
        .map(|at| &message[at + 15..])
    else {
        return message.to_string();
    };
    let before = &message[..message.len() - rest.len() - 15];
    let end = rest
        .find(". ")
        .or_else(|| rest.find('.'))
        .unwrap_or(rest.len());
    let missing = unqualified(&rest[..end]);
    let mut out = format!("{before}no column `{missing}`");
    if let Some(at) = rest.find("Did you mean '")
        && let Some(end) = rest[at + 14..].find('\'')
    {
        out += &format!(
            " (did you mean `{}`?)",
            unqualified(&rest[at + 14..at + 14 + end])
        );
    }
    if let Some(at) = rest.find("Valid fields are ") {
        // DataFusion ends its message with the list and a full stop.
        let body = rest[at + 17..].trim_end().trim_end_matches('.');
        let mut seen = std::collections::HashSet::new();
        let names: Vec<String> = body
            .split(", ")
            .map(unqualified)
            .filter(|n| seen.insert(n.clone()))
            .collect();
        out += &format!("; the columns are: {}", names.join(", "));
    }
    out
}

/// DataFusion's planning errors that name its internals (signatures, coercion,
/// wildcard expansion), said as what is wrong in the SQL; None for the others.
fn planning_in_words(message: &str) -> Option<String> {
    let quoted_after = |marker: &str, quote: char| -> Option<String> {
        let rest = &message[message.find(marker)? + marker.len()..];
        Some(rest[..rest.find(quote)?].to_string())
    };
    if let Some(call) = quoted_after(
        "No function matches the given name and argument types '",
        '\'',
    ) {
        // "Candidate functions:" then one tab-indented signature per line.
        let candidates: Vec<&str> = message
            .split_once("Candidate functions:")
            .map(|(_, list)| {
                list.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut out = format!("no function {call}: the arguments have other types than it takes");
        if !candidates.is_empty() {
            out += &format!(
                " ({}); cast them to one of those types",
                candidates.join(", ")
            );
        }
        return Some(out);
    }
    if message
        .contains("must appear in the GROUP BY clause or must be part of an aggregate function")
    {
        let column = quoted_after("column \"", '"').map(|c| unqualified(&c))?;
        return Some(format!(
            "column `{column}` must be in GROUP BY or inside an aggregate function (count, sum, min, ...)"
        ));
    }
    // Two aggregates named alike (`sum(age)` and `sum(CAST(age AS BIGINT))`: a cast
    // does not change a name).
    if let Some(name) = quoted_after("Schema contains duplicate unqualified field name \"", '"') {
        return Some(format!(
            "two result columns are named `{}`; rename one with AS",
            result_name(&name)
        ));
    }
    if message.contains("Projections require unique expression names") {
        // "Int64(1) AS a": the name is the alias; "CAST(Int64(1) AS Int16)" is named
        // as what it casts, `1`.
        let name = quoted_after("the expression \"", '"').map(|c| {
            let c = without_casts(&c);
            let named = c.rsplit_once(" AS ").map_or(c.as_str(), |(_, alias)| alias);
            let literal = named
                .split_once('(')
                .filter(|(kind, _)| {
                    kind.starts_with(['I', 'U', 'F']) && kind.ends_with(char::is_numeric)
                })
                .and_then(|(_, rest)| rest.strip_suffix(')'));
            result_name(literal.unwrap_or(named))
        })?;
        return Some(format!(
            "two result columns are named `{name}`; rename one with AS"
        ));
    }
    if let Some(at) = message.find("Cannot infer common argument type for comparison operation ") {
        let operation = message[at + 59..].trim_end_matches('.');
        let (left, right) = operation
            .split_once(' ')
            .map(|(l, r)| (l, r.split_once(' ').map_or(r, |(_, t)| t)))?;
        return Some(format!(
            "cannot compare {left} with {right}: compare values of one type (a list with array_has(list, 'x'), text with a quoted value)"
        ));
    }
    if let Some(value) = quoted_after("Cannot cast string '", '\'') {
        let target = quoted_after("' to value of ", ' ').unwrap_or_else(|| "that type".into());
        return Some(format!(
            "the text '{value}' is not a value of type {target} (as a CAST, or a comparison of a column with a value of another type: numbers go without quotes, text in quotes)"
        ));
    }
    // A cast, or integer arithmetic (done wider and cast back), out of its type's range.
    if let Some(rest) = message.split("Can't cast value ").nth(1)
        && let Some((value, target)) = rest.split_once(" to type ")
    {
        let target = target.split_whitespace().next().unwrap_or(target);
        return Some(format!(
            "{value} is out of range for {}; cast to a wider type first (CAST(x AS BIGINT))",
            integer_type_name(target)
        ));
    }
    None
}

/// PostgreSQL's name of an Arrow integer type, as its "out of range" errors say it.
fn integer_type_name(arrow_name: &str) -> &str {
    match arrow_name {
        "Int8" => "tinyint",
        "Int16" | "UInt8" => "smallint",
        "Int32" | "UInt16" => "integer",
        "Int64" | "UInt32" | "UInt64" => "bigint",
        other => other,
    }
}

#[cfg(test)]
mod field_tests {
    #[test]
    fn the_fields_of_a_where_error_are_named_as_the_user_types_them() {
        let said = super::unqualified_fields(
            "No field named nodule_size. Did you mean 'i.nodule'?\nValid fields are i.image_index, i.nodule, p.image_index, p.mean.",
        );
        assert_eq!(
            said,
            "no column `nodule_size` (did you mean `nodule`?); the columns are: image_index, nodule, mean"
        );
    }

    #[test]
    fn planning_errors_in_words() {
        let said = |m: &str| super::planning_in_words(m).unwrap();
        assert_eq!(
            said(
                "Internal error: Function 'sum' failed to match any signature, errors: Error during planning: x.\nThis issue was likely caused by a bug in DataFusion's code. No function matches the given name and argument types 'sum(Utf8)'. You might need to add explicit type casts.\n\tCandidate functions:\n\tsum(Decimal)\n\tsum(Int64)"
            ),
            "no function sum(Utf8): the arguments have other types than it takes (sum(Decimal), sum(Int64)); cast them to one of those types"
        );
        assert_eq!(
            said(
                "Column in SELECT must be in GROUP BY or an aggregate function: While expanding wildcard, column \"images.image_index\" must appear in the GROUP BY clause or must be part of an aggregate function, currently only \"images.sex\" appears in the SELECT clause satisfies this requirement"
            ),
            "column `image_index` must be in GROUP BY or inside an aggregate function (count, sum, min, ...)"
        );
        assert_eq!(
            said(
                "Projections require unique expression names but the expression \"images.image_index\" at position 0 and \"images.image_index\" at position 1 have the same name. Consider aliasing (\"AS\") one of them."
            ),
            "two result columns are named `image_index`; rename one with AS"
        );
        assert_eq!(
            said(
                "Projections require unique expression names but the expression \"CAST(Int64(1) AS Int16)\" at position 0 and \"CAST(Int64(1) AS Float32)\" at position 1 have the same name. Consider aliasing (\"AS\") one of them."
            ),
            "two result columns are named `1`; rename one with AS"
        );
        // A function of a column and of its cast (a cast does not change a name).
        assert_eq!(
            said(
                "Projections require unique expression names but the expression \"max(images.age)\" at position 0 and \"max(CAST(images.age AS Int32))\" at position 1 have the same name. Consider aliasing (\"AS\") one of them."
            ),
            "two result columns are named `max(age)`; rename one with AS"
        );
        // The cast first, inside the function: its type is no alias.
        assert_eq!(
            said(
                "Projections require unique expression names but the expression \"sum(CAST(images.age AS Int64))\" at position 0 and \"sum(images.age)\" at position 1 have the same name. Consider aliasing (\"AS\") one of them."
            ),
            "two result columns are named `sum(age)`; rename one with AS"
        );
        assert_eq!(
            said(
                "Projections require unique expression names but the expression \"round(CAST(CAST(images.age AS Int32) AS Float64)) AS a\" at position 0 and \"a\" at position 1 have the same name. Consider aliasing (\"AS\") one of them."
            ),
            "two result columns are named `a`; rename one with AS"
        );
        assert_eq!(
            said(
                "Schema error: Schema contains duplicate unqualified field name \"sum(images.age)\""
            ),
            "two result columns are named `sum(age)`; rename one with AS"
        );
        assert_eq!(
            said("Arrow error: Cast error: Can't cast value 300 to type Int8"),
            "300 is out of range for tinyint; cast to a wider type first (CAST(x AS BIGINT))"
        );
        assert_eq!(
            said("Arrow error: Cast error: Can't cast value 857375 to type Int16"),
            "857375 is out of range for smallint; cast to a wider type first (CAST(x AS BIGINT))"
        );
        assert_eq!(
            said(
                "type_coercion: Cannot infer common argument type for comparison operation List(Utf8) = Int64"
            ),
            "cannot compare List(Utf8) with Int64: compare values of one type (a list with array_has(list, 'x'), text with a quoted value)"
        );
        assert_eq!(
            said("Cast error: Cannot cast string 'F' to value of Int64 type"),
            "the text 'F' is not a value of type Int64 (as a CAST, or a comparison of a column with a value of another type: numbers go without quotes, text in quotes)"
        );
        assert!(super::planning_in_words("table 'x' not found").is_none());
    }
}

/// Whether DataFusion failed for want of memory: its ResourcesExhausted, or the
/// internal error its nested-loop join gives when the memory limit leaves its build
/// side nothing to spill.
pub fn out_of_memory(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::error::DataFusionError as D;
    match e.find_root() {
        D::ResourcesExhausted(_) => true,
        D::Internal(message) => message.contains("no data to spill"),
        _ => false,
    }
}

fn words(e: &datafusion::error::DataFusionError) -> String {
    use datafusion::error::DataFusionError as D;
    use datafusion::sql::sqlparser::parser::ParserError as P;
    if out_of_memory(e) {
        // DataFusion's text lists its operators' reservations and its own settings.
        return format!(
            "the query needs more memory than its limit of {}",
            memory_limit_text()
        );
    }
    match e {
        D::SQL(parsed, _) => match parsed.as_ref() {
            P::ParserError(m) | P::TokenizerError(m) => format!("the SQL does not parse: {m}"),
            P::RecursionLimitExceeded => "the SQL is nested too deeply to parse".into(),
        },
        // "Optimizer rule 'simplify_expressions' failed": where DataFusion found it,
        // not what is wrong.
        D::Context(what, inner) if what.starts_with("Optimizer rule") => words(inner),
        D::Context(what, inner) => {
            let file = absolute_paths(what);
            // "Error when processing CSV file /x.csv": the file is what the user needs.
            let file = file
                .strip_prefix("Error when processing CSV file ")
                .unwrap_or(&file);
            format!("{file}: {}", words(inner))
        }
        D::ArrowError(e, _) => ragged_csv(&e.to_string()).unwrap_or_else(|| e.to_string()),
        D::Diagnostic(_, inner) => words(inner),
        D::Shared(inner) => words(inner),
        D::Collection(all) => all.first().map(words).unwrap_or_default(),
        D::NotImplemented(m) => format!("not supported: {}", without_debug_print(m)),
        D::Plan(m) | D::Execution(m) | D::Configuration(m) => without_debug_print(m).to_string(),
        D::Internal(m) => format!(
            "{} (an internal error of DataFusion)",
            without_debug_print(m)
        ),
        D::SchemaError(m, _) => m.to_string(),
        D::IoError(io) => io_text(io),
        D::ObjectStore(store) => store.to_string(),
        D::External(inner) if is_panic(inner.as_ref()) => {
            format!("internal error: {inner} (a bug of DataFusion's; run the query again)")
        }
        D::External(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// An I/O error without the "(os error N)" the standard library appends.
fn io_text(e: &std::io::Error) -> String {
    without_os_error_numbers(&e.to_string())
}

/// The message a panic carries (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// A message without the " (os error N)" the standard library appends to I/O errors:
/// the words say it, the number is for programs.
pub fn without_os_error_numbers(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" (os error ") {
        let tail = &rest[at + " (os error ".len()..];
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Arrow's CSV error for a record with more or fewer fields than the first, in plain
/// words: "line 2 has 3 fields, the header (line 1) 2 fields".
fn ragged_csv(message: &str) -> Option<String> {
    let rest = message.split("Expected ").nth(1)?;
    let numbers: Vec<&str> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .collect();
    let [expected, found, line] = numbers.as_slice() else {
        return None;
    };
    let fields = |n: &str| format!("{n} field{}", if n == "1" { "" } else { "s" });
    Some(format!(
        "line {line} has {}, the header (line 1) {}; every line of a CSV file needs the same number of fields",
        fields(found),
        fields(expected)
    ))
}

/// DataFusion names a local file by its object-store path, without the leading `/`
/// ("Error when processing CSV file tmp/x.csv"): the path as the user wrote it.
fn absolute_paths(context: &str) -> String {
    match context.split_once(" file ") {
        Some((head, path)) if !path.starts_with('/') && Path::new(&format!("/{path}")).exists() => {
            format!("{head} file /{path}")
        }
        _ => context.to_string(),
    }
}

/// The memory limit of a query as the user set it (`CXR_MEMORY_LIMIT`) or the
/// default.
fn memory_limit_text() -> String {
    std::env::var("CXR_MEMORY_LIMIT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| format!("{} MiB", crate::sql::DEFAULT_MEMORY_LIMIT >> 20))
}

/// A message cut before a Rust debug print of a plan node (`InSubquery(InSubquery {
/// expr: ...`), which says nothing to a person and can be pages long.
fn without_debug_print(m: &str) -> &str {
    match m.find(" { ") {
        Some(brace) => {
            let head = &m[..brace];
            head.rfind('(')
                .map_or(head, |open| &head[..open])
                .trim_end()
        }
        None => m,
    }
}

fn location(line: Option<u64>, column: Option<&str>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column '{c}'"),
        (Some(l), None) => format!(", line {l}"),
        (None, Some(c)) => format!(", column '{c}'"),
        (None, None) => String::new(),
    }
}

/// Whether an I/O error says that a path the user gave does not work: it is missing,
/// a file where a folder is needed (or the reverse), not theirs to read or write, or
/// on a read-only file system. Those are the user's to fix (exit 2); a full disk, a
/// failing device or a closed pipe are the system's (exit 1).
fn is_users_path(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::NotFound
            | K::NotADirectory
            | K::IsADirectory
            | K::PermissionDenied
            | K::AlreadyExists
            | K::InvalidFilename
            | K::ReadOnlyFilesystem
            | K::DirectoryNotEmpty
    )
}

/// The I/O error at the bottom of an error's chain of sources, if there is one.
fn io_source<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e std::io::Error> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// Whether an I/O error is the system's failure (a full disk, no memory), not a
/// property of the file read.
fn is_system_failure(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::StorageFull | K::OutOfMemory | K::ResourceBusy | K::QuotaExceeded | K::BrokenPipe
    )
}

/// Whether an error is a task of the query that panicked: DataFusion passes it on
/// as a join error wrapped in its own ("Join Error: task 94 panicked with message
/// ..."), not as the panic cxr's own handler reports.
fn is_panic(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    use tokio::task::JoinError;
    // DataFusion's repartition shares the join error among its outputs (an Arc).
    e.downcast_ref::<std::sync::Arc<JoinError>>()
        .map(|shared| shared.as_ref())
        .or_else(|| e.downcast_ref::<JoinError>())
        .is_some_and(JoinError::is_panic)
}

/// Whether an I/O error says the bytes read are not what they claim to be.
fn is_bad_data(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::InvalidData | K::UnexpectedEof | K::InvalidInput
    )
}

/// cxr's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error: 2 for anything the user can fix in what
    /// they asked (bad input files, flags, SQL that does not parse or plan, a refused
    /// statement, a missing warehouse), 1 for failures inside cxr or the system.
    pub fn exit_code(&self) -> i32 {
        use datafusion::error::DataFusionError as D;
        match self {
            Error::Input { .. } | Error::Usage(_) | Error::Query(_) | Error::Warehouse(_) => 2,
            // A query fails on what it asks or reads (a cast that does not hold, a
            // damaged file it names): the user's to fix. The system's failures and
            // DataFusion's own bugs are not.
            Error::Io { source, .. } if is_users_path(source) => 2,
            Error::DataFusion(e) if out_of_memory(e) => 2,
            Error::DataFusion(e) => match e.find_root() {
                D::IoError(io) if is_users_path(io) || is_bad_data(io) => 2,
                // Reading a file a query names (the object store is the local file
                // system): a damaged or unreadable file is the user's, unless the
                // system failed underneath.
                D::ObjectStore(store) => match io_source(store.as_ref()) {
                    Some(io) if is_system_failure(io) => 1,
                    _ => 2,
                },
                D::IoError(_) | D::Internal(_) | D::ExecutionJoin(_) | D::Shared(_) => 1,
                // Functions report a bad argument (a regex that does not parse) this
                // way; the system's own failures come as I/O errors.
                // An I/O error inside a function or a reader: the data's fault when
                // it says the bytes are bad (a corrupt gzip stream), else the system's.
                D::External(inner) => match inner.downcast_ref::<std::io::Error>() {
                    Some(io) if is_bad_data(io) => 2,
                    Some(_) => 1,
                    // A task of the query that panicked (DataFusion's own bug).
                    None if is_panic(inner.as_ref()) => 1,
                    None => 2,
                },
                _ => 2,
            },
            _ => 1,
        }
    }

    /// A line of advice to print after the message, for errors whose fix is not in
    /// the message itself.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::DataFusion(e) if out_of_memory(e) => Some(
                "raise the limit with CXR_MEMORY_LIMIT (e.g. CXR_MEMORY_LIMIT=4GiB), or ask for fewer rows or columns"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Whether this is a write to a closed pipe (a reader such as `head` left).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// An input error about a whole file.
    pub fn input(path: &Path, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An input error at a line (and column) of a file.
    pub fn input_at(
        path: &Path,
        line: u64,
        column: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::Input {
            path: path.to_path_buf(),
            line: Some(line),
            column: column.map(str::to_string),
            message: message.into(),
        }
    }

    /// An I/O error with what cxr was doing when it happened.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds context to `std::io::Result`.
pub trait IoContext<T> {
    /// Wraps an I/O error with a description of what was being done.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

#[cfg(test)]
mod os_error_tests {
    use super::without_os_error_numbers;

    #[test]
    fn os_error_numbers_are_left_out() {
        assert_eq!(
            without_os_error_numbers("/x: cannot create: No such file or directory (os error 2)"),
            "/x: cannot create: No such file or directory"
        );
        assert_eq!(
            without_os_error_numbers("a (os error 13); b (os error 28)"),
            "a; b"
        );
        assert_eq!(
            without_os_error_numbers("kept (os error x) and (os error 5"),
            "kept (os error x) and (os error 5"
        );
    }
}

/// The CSV files this process's queries read (`FROM 'x.csv'`), so that a value the
/// CSV reader refuses is named with its file and line: DataFusion's reader counts
/// lines from the start of the piece of the file one thread reads, and names no file.
static CSV_FILES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Notes that a query reads the CSV file `path`.
pub fn reading_csv(path: &Path) {
    if let Ok(mut files) = CSV_FILES.lock()
        && !files.iter().any(|f| f == path)
    {
        files.push(path.to_path_buf());
    }
}

/// "Error while parsing value 'x' as type 'Int64' for column 1 at line 49073", said
/// as "FILE, line L, column C (`name`): 'x' is not a value of type Int64", the line
/// found by reading the files the query reads for the first record holding the value
/// in that column. None when no such record is found.
fn csv_value_located(text: &str) -> Option<String> {
    use std::sync::LazyLock;
    static REFUSED: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"Error while parsing value '(.*)' as type '([^']+)' for column (\d+) at line \d+",
        )
        .expect("a valid pattern")
    });
    let found = REFUSED.captures(text)?;
    let (value, kind) = (&found[1], &found[2]);
    let column: usize = found[3].parse().ok()?;
    let files = CSV_FILES.lock().ok()?.clone();
    files.iter().find_map(|file| {
        let (line, name) = crate::input::csv::line_of_value(file, column, value)?;
        Some(format!(
            "{}, line {line}, column {} (`{name}`): '{value}' is not a value of type {kind}",
            file.display(),
            column + 1
        ))
    })
}

#[cfg(test)]
mod memory_tests {
    use super::Error;
    use datafusion::error::DataFusionError;

    /// The nested-loop join's error when the memory limit leaves it nothing to spill
    /// is the memory limit's, as ResourcesExhausted is: exit 2 and the limit named.
    #[test]
    fn a_join_with_nothing_to_spill_ran_out_of_memory() {
        for e in [
            DataFusionError::Internal("Left side produced no data to spill".into()),
            DataFusionError::ResourcesExhausted("Failed to allocate".into()),
        ] {
            let error = Error::DataFusion(e);
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains("needs more memory"), "{error}");
            assert!(error.hint().is_some());
        }
        let other = Error::DataFusion(DataFusionError::Internal("a bug".into()));
        assert_eq!(other.exit_code(), 1);
    }
}

#[cfg(test)]
mod panic_tests {
    use super::Error;
    use datafusion::error::DataFusionError;

    /// A task of a query that panicked comes back as DataFusion's repartition gives
    /// it (a join error inside "Join Error"): a bug, exit 1, said as internal.
    #[test]
    fn a_query_task_that_panicked_is_an_internal_error() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let joined = runtime
            .block_on(async { tokio::spawn(async { panic!("partition not used yet") }).await });
        // As DataFusion 55's RepartitionExec (`wait_for_task`) wraps it.
        let panicked = std::sync::Arc::new(joined.unwrap_err());
        let error = Error::DataFusion(DataFusionError::Context(
            "Join Error".into(),
            Box::new(DataFusionError::External(Box::new(std::sync::Arc::clone(
                &panicked,
            )))),
        ));
        assert_eq!(error.exit_code(), 1);
        let text = error.to_string();
        assert!(
            text.contains("internal error") && text.contains("panicked"),
            "{text}"
        );
    }
}
