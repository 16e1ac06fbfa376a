//! Files named in a query (`SELECT * FROM 'out.parquet'`), checked and registered
//! before DataFusion plans the query: DataFusion's own lookup panicked on a damaged
//! Parquet footer, returned nothing for an empty file, and did not know `.ndjson`
//! (cxr's own output) or a JSON array (`--format json`).

use std::ops::ControlFlow;
use std::path::Path;

use datafusion::common::TableReference;
use datafusion::prelude::{JsonReadOptions, SessionContext};
use datafusion::sql::parser::{CopyToSource, Statement};
use datafusion::sql::sqlparser::ast::{ObjectName, visit_relations};

use crate::error::{Error, IoContext, Result};

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
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() && !m.is_dir() => {
                // Reading a FIFO or a device would block or never end.
                return Err(Error::input(
                    path,
                    "not a regular file (a pipe or a device); a table is read from a file",
                ));
            }
            Ok(m) if m.is_file() => {}
            Ok(_) => continue,
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
        if ctx.table_exist(TableReference::bare(name.as_str()))? {
            continue;
        }
        let size = std::fs::metadata(path)
            .ctx(|| format!("{name}: cannot read"))?
            .len();
        if size == 0 {
            return Err(Error::input(path, "an empty file is not a table"));
        }
        match extension(path).as_str() {
            "parquet" => {
                crate::warehouse::parquet::describe(path)?;
            }
            "json" | "ndjson" | "jsonl" => register_json(ctx, &name, path).await?,
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
        ..Default::default()
    };
    let absolute = std::path::absolute(path).ctx(|| format!("{name}: cannot resolve"))?;
    ctx.register_json(
        TableReference::bare(name),
        absolute.to_string_lossy(),
        options,
    )
    .await
    .map_err(|e| Error::input(path, format!("not a readable JSON table: {e}")))
}
