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

/// What ingest did about an issue, in one vocabulary for every reader (the issue
/// texts differ by dataset; this groups them): `refused` (a row, label or box not
/// taken in), `skipped` (ignored: nothing of it is used), `nulled` (a value set to
/// NULL), `changed` (a value corrected, converted or matched) or `kept` (taken in as
/// it is, noted). Read from the consequence each text ends with (after its last `;`
/// or `:`), so every reader's wording maps here in one place.
pub fn action_of(issue: &str) -> &'static str {
    let consequence = issue
        .rsplit([';', ':'])
        .next()
        .unwrap_or(issue)
        .to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| consequence.contains(w));
    if has(&["refused", "dropped"]) {
        "refused"
    } else if has(&["skipped", "ignored"]) {
        "skipped"
    } else if has(&[
        "normalised",
        "truncated",
        "converted",
        "matched to",
        "set to other",
        "set to 1",
        "kept once",
    ]) {
        "changed"
    } else if has(&["null", "are empty"]) {
        "nulled"
    } else {
        "kept"
    }
}

/// Collects issues while the inputs are read.
#[derive(Debug, Default)]
pub struct Issues {
    rows: Vec<Issue>,
    /// How many issues pushed in a row were about the last row's line and field
    /// (0 after a merge).
    same_field: usize,
    /// How many rows this collection listed itself (not merged from another).
    listed: usize,
}

/// At most this many issues are listed for one reader (one dataset's files); one
/// more row says that the rest are not. The real releases give at most a few
/// thousand: a file with a million bad fields is not a million rows in memory.
pub const MAX_LISTED_ISSUES: usize = 100_000;

/// At most this many issues are listed for one field of one line; one more row
/// says that the rest are not: a field of a million unknown labels is not a million
/// rows.
const ISSUES_PER_FIELD: usize = 20;

/// A value or issue text longer than this is cut (at a character boundary), its
/// length said: the whole of a 100 MB field is not kept for each issue about it.
const MAX_TEXT_BYTES: usize = 256;

/// `text`, cut to [`MAX_TEXT_BYTES`] with its length said when longer.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_string();
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// What every reader says when it sets a sex it cannot read to NULL: one text for
/// every dataset, so that `data_issues_summary` counts them as one group (the
/// `field` column names the release's own column).
pub const SEX_NOT_READ: &str = "sex is not M or F (Male, Female); set to NULL";

impl Issues {
    /// The issues about a whole file or dataset (no line, no field): what a user
    /// should hear when the ingest ends, not only find in `data_issues`.
    /// The same issue of many values (an image in neither split list) is one note
    /// with its count.
    pub fn about_whole_files(&self) -> Vec<String> {
        let mut notes: Vec<(String, usize)> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = Default::default();
        for r in self
            .rows
            .iter()
            .filter(|r| r.line.is_none() && r.field.is_none())
        {
            let note = format!("{}: {}", r.source_file, r.issue);
            match at.get(&note) {
                Some(&k) => notes[k].1 += 1,
                None => {
                    at.insert(note.clone(), notes.len());
                    notes.push((note, 1));
                }
            }
        }
        notes
            .into_iter()
            .map(|(note, count)| match count {
                1 => note,
                n => format!(
                    "{note} ({} rows in data_issues)",
                    crate::output::thousands(n as u64)
                ),
            })
            .collect()
    }

    /// Records one issue.
    pub fn push(
        &mut self,
        source_file: &str,
        line: Option<u64>,
        field: Option<&str>,
        value: Option<&str>,
        issue: impl Into<String>,
    ) {
        let line = line.map(|l| l as i64);
        let same = self.rows.last().is_some_and(|last| {
            last.line == line
                && line.is_some()
                && last.field.as_deref() == field
                && last.source_file == source_file
        });
        // 0: nothing pushed since a merge (a run starts here).
        self.same_field = if same && self.same_field > 0 {
            self.same_field + 1
        } else {
            1
        };
        if self.same_field > ISSUES_PER_FIELD + 1 || self.listed > MAX_LISTED_ISSUES {
            return;
        }
        self.listed += 1;
        let issue = if self.listed > MAX_LISTED_ISSUES {
            format!(
                "more than {MAX_LISTED_ISSUES} issues in this dataset's files; this one and those after it are not listed"
            )
        } else if self.same_field == ISSUES_PER_FIELD + 1 {
            format!(
                "more than {ISSUES_PER_FIELD} issues in this field of this line; the rest are not listed"
            )
        } else {
            bounded(&issue.into())
        };
        // The row saying the rest are not listed is about no one field: a filter of
        // the rows by field (the other NIH release's) keeps it.
        let field = field.filter(|_| self.listed <= MAX_LISTED_ISSUES);
        self.rows.push(Issue {
            source_file: source_file.to_string(),
            line,
            field: field.map(str::to_string),
            value: value.map(bounded),
            issue,
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

    /// These issues but those `keep` refuses.
    pub fn retained(mut self, keep: impl FnMut(&Issue) -> bool) -> Issues {
        self.rows.retain(keep);
        self.same_field = 0;
        self
    }

    /// Appends all issues of `other`.
    pub fn extend(&mut self, other: Issues) {
        self.rows.extend(other.rows);
        // The next push starts a run of its own, whatever the last row merged is.
        self.same_field = 0;
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
            ("action", text(r.iter().map(|i| action_of(&i.issue)))),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::action_of;

    /// A file of a million bad fields lists the first issues and one row saying the
    /// rest are not listed; memory stays bounded.
    #[test]
    fn issues_past_the_cap_are_one_row() {
        let mut issues = super::Issues::default();
        for line in 2..(super::MAX_LISTED_ISSUES as u64 + 500) {
            issues.push(
                "f.csv",
                Some(line),
                Some("Age"),
                Some("x"),
                "bad age; set to NULL",
            );
        }
        let rows = issues.rows();
        assert_eq!(rows.len(), super::MAX_LISTED_ISSUES + 1);
        let last = rows.last().unwrap();
        assert_eq!(last.line, Some(super::MAX_LISTED_ISSUES as i64 + 2));
        assert!(last.issue.contains("not listed"), "{}", last.issue);
        // The collection a reader's issues are merged into still lists its own.
        let mut all = super::Issues::default();
        all.extend(issues);
        all.push("g.csv", None, None, None, "a note");
        assert_eq!(all.rows().last().unwrap().issue, "a note");
    }

    #[test]
    fn every_readers_wording_has_one_action() {
        for (issue, action) in [
            (super::SEX_NOT_READ, "nulled"),
            ("age over 120; set to NULL", "nulled"),
            ("fractional age; truncated to 58", "changed"),
            (
                "image not in the DICOM headers file: sex, age and view NULL",
                "nulled",
            ),
            (
                "record has 3 fields but the header has 5; the missing fields are empty",
                "nulled",
            ),
            ("zero or negative width or height; box refused", "refused"),
            ("negative coordinate; box dropped", "refused"),
            ("empty item in Labels; ignored", "skipped"),
            ("empty label between '|' separators; ignored", "skipped"),
            (
                "duplicate Image Index (first on line 7); row refused",
                "refused",
            ),
            ("Target is not 0 or 1; row skipped", "skipped"),
            ("fields past the header ignored", "skipped"),
            (
                "coordinates on a 'No finding' row; ignored, no box",
                "skipped",
            ),
            ("age given in months; converted to 0 whole years", "changed"),
            ("label 'Infiltrate' normalised to 'Infiltration'", "changed"),
            (
                "image id spelled differently in the DICOM header file: matched to 'CXR1_IM-0001-1001'",
                "changed",
            ),
            (
                "lateral AP/PA code on a row marked Frontal; view set to OTHER, frontal to NULL",
                "changed",
            ),
            (
                "rows of this image disagree on Target: label set to 1",
                "changed",
            ),
            ("duplicate label; kept once", "changed"),
            ("no Labels; image kept without labels", "kept"),
            ("image covered by no report: no labels", "kept"),
            (
                "box label 'Mass' is not among the image's labels; box kept",
                "kept",
            ),
        ] {
            assert_eq!(action_of(issue), action, "{issue}");
        }
    }
}
