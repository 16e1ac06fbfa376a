//! `COPY (query) TO STDOUT` and `COPY table TO STDOUT` — psql's `\copy ... to` — in
//! PostgreSQL's text and CSV formats. The rows go to the client; no file is named or
//! written on the server (`COPY ... TO 'file'` stays refused).

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Query, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// A `COPY ... TO STDOUT`: the query, and how its rows are written.
pub struct CopyOut {
    /// The rows: the query, or `SELECT columns FROM table`.
    pub query: Statement,
    csv: bool,
    header: bool,
    delimiter: char,
    null: String,
}

impl CopyOut {
    /// The `COPY ... TO STDOUT` a statement is, if it is one; an error for an
    /// option that is not supported.
    pub fn from_statement(statement: &Statement) -> Option<Result<CopyOut>> {
        let Statement::Copy {
            source,
            to: true,
            target: CopyTarget::Stdout,
            options,
            legacy_options,
            ..
        } = statement
        else {
            return None;
        };
        Some(CopyOut::new(source, options, legacy_options))
    }

    fn new(
        source: &CopySource,
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
    ) -> Result<CopyOut> {
        let mut copy = CopyOut {
            query: Statement::Query(Box::new(query_of(source)?)),
            csv: false,
            header: false,
            delimiter: '\t',
            null: "\\N".into(),
        };
        let mut delimiter = None;
        let mut null = None;
        for option in options {
            match option {
                CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                    "csv" => copy.csv = true,
                    "text" => copy.csv = false,
                    other => return Err(unsupported(&format!("FORMAT {other}"))),
                },
                CopyOption::Header(on) => copy.header = *on,
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(text) => null = Some(text.clone()),
                CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") => {}
                other => return Err(unsupported(&other.to_string())),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv) => {
                    copy.csv = true;
                    for option in csv {
                        match option {
                            CopyLegacyCsvOption::Header => copy.header = true,
                            other => return Err(unsupported(&other.to_string())),
                        }
                    }
                }
                CopyLegacyOption::Header => copy.header = true,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(text) => null = Some(text.clone()),
                other => return Err(unsupported(&other.to_string())),
            }
        }
        if copy.csv {
            copy.delimiter = ',';
            copy.null = String::new();
        }
        copy.delimiter = delimiter.unwrap_or(copy.delimiter);
        copy.null = null.unwrap_or(copy.null);
        if copy.header && !copy.csv {
            return Err(unsupported("HEADER without CSV"));
        }
        Ok(copy)
    }

    /// The header line, when asked for.
    pub fn header(&self, schema: &Schema) -> Option<Vec<u8>> {
        if !self.header {
            return None;
        }
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| self.field(f.name()))
            .collect();
        Some(format!("{}\n", names.join(&self.delimiter.to_string())).into_bytes())
    }

    /// The rows of a batch, one line each (one `CopyData` message per row, as
    /// PostgreSQL sends them: clients count and parse rows by message).
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let batch = &super::text::for_copy(batch.clone())?;
        let options = FormatOptions::default();
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut line = Vec::new();
            for (i, (column, formatter)) in batch.columns().iter().zip(&formatters).enumerate() {
                if i > 0 {
                    line.extend(self.delimiter.to_string().as_bytes());
                }
                // A column of no type (`SELECT NULL`) is all NULL without a null mask.
                if column.is_null(row) || column.data_type() == &DataType::Null {
                    line.extend(self.null.as_bytes());
                } else if column.data_type() == &DataType::Boolean {
                    // PostgreSQL writes booleans as t and f.
                    let value = column
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .is_some_and(|b| b.value(row));
                    line.push(if value { b't' } else { b'f' });
                } else {
                    line.extend(self.field(&formatter.value(row).to_string()).as_bytes());
                }
            }
            line.push(b'\n');
            rows.push(line);
        }
        Ok(rows)
    }

    /// One value, escaped (text) or quoted where needed (CSV) as PostgreSQL does.
    fn field(&self, value: &str) -> String {
        if self.csv {
            let needs_quotes = value.is_empty()
                || value == self.null
                || value.contains([self.delimiter, '"', '\n', '\r']);
            if needs_quotes {
                return format!("\"{}\"", value.replace('"', "\"\""));
            }
            return value.to_string();
        }
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c == self.delimiter => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out
    }
}

/// The query a COPY source stands for.
fn query_of(source: &CopySource) -> Result<Query> {
    let (table_name, columns) = match source {
        CopySource::Query(query) => return Ok((**query).clone()),
        CopySource::Table {
            table_name,
            columns,
        } => (table_name, columns),
    };
    let projection = if columns.is_empty() {
        "*".to_string()
    } else {
        let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        names.join(", ")
    };
    let sql = format!("SELECT {projection} FROM {table_name}");
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .map_err(|e| Error::Query(format!("COPY {table_name}: {e}")))?;
    match parsed.into_iter().next() {
        Some(Statement::Query(query)) => Ok(*query),
        _ => Err(Error::Query(format!("COPY {table_name}: not a table"))),
    }
}

fn unsupported(what: &str) -> Error {
    Error::Query(format!(
        "COPY ... TO STDOUT supports FORMAT text or csv, HEADER, DELIMITER and NULL; not {what}"
    ))
}
