//! The `data_issues` table: everything ingest changed, nulled or refused.

use datafusion::arrow::array::RecordBatch;

use crate::error::Result;
use crate::input::table::{batch, i64s, text, utf8};

/// One row of `data_issues`.
#[derive(Debug, Clone)]
pub struct Issue {
    /// File name of the input.
    pub source_file: String,
    /// 1-based line (header is line 1), where one applies.
    pub line: Option<i64>,
    /// The source column, or the member path for images.
    pub field: Option<String>,
    /// The offending value.
    pub value: Option<String>,
    /// What was found and what was done.
    pub issue: String,
}

/// Collects issues while the inputs are read.
#[derive(Debug, Default)]
pub struct Issues {
    rows: Vec<Issue>,
}

impl Issues {
    /// Records one issue.
    pub fn push(
        &mut self,
        source_file: &str,
        line: Option<u64>,
        field: Option<&str>,
        value: Option<&str>,
        issue: impl Into<String>,
    ) {
        self.rows.push(Issue {
            source_file: source_file.to_string(),
            line: line.map(|l| l as i64),
            field: field.map(str::to_string),
            value: value.map(str::to_string),
            issue: issue.into(),
        });
    }

    /// Number of issues recorded.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The recorded issues.
    pub fn rows(&self) -> &[Issue] {
        &self.rows
    }

    /// Appends all issues of `other`.
    pub fn extend(&mut self, other: Issues) {
        self.rows.extend(other.rows);
    }

    /// The `data_issues` table.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let r = &self.rows;
        batch(vec![
            (
                "source_file",
                text(r.iter().map(|i| i.source_file.as_str())),
            ),
            ("line", i64s(r.iter().map(|i| i.line))),
            ("field", utf8(r.iter().map(|i| i.field.as_deref()))),
            ("value", utf8(r.iter().map(|i| i.value.as_deref()))),
            ("issue", text(r.iter().map(|i| i.issue.as_str()))),
        ])
    }
}
