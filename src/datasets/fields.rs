//! Small helpers shared by the dataset readers.

use std::path::Path;

use crate::error::{Error, Result};
use crate::input::csv::{CsvTable, squash};

/// Ages above this many years are implausible and become NULL (as for NIH).
pub const MAX_AGE: f32 = 120.0;

/// A column a reader needs: (name as documented, squashed aliases).
pub type Col<'a> = (&'a str, &'a [&'a str]);

/// The positions of `cols` in `t`'s header; when any is missing, one input error
/// naming the file, what it was read as, and every missing column.
pub fn require_all(t: &CsvTable, what: &str, cols: &[Col]) -> Result<Vec<usize>> {
    let found: Vec<Option<usize>> = cols.iter().map(|(_, al)| t.find(al)).collect();
    let missing: Vec<&str> = cols
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|((n, _), _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(missing_columns(&t.path, what, &missing, &t.header));
    }
    Ok(found.into_iter().map(|f| f.unwrap_or(0)).collect())
}

/// The error for a file that lacks columns a dataset needs.
pub fn missing_columns(path: &Path, what: &str, missing: &[&str], header: &[String]) -> Error {
    Error::input(
        path,
        format!(
            "not a {what} file: missing column(s) {}; the header has: {}",
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", "),
            header.join(", ")
        ),
    )
}

/// Whether a header (as squashed names) has all of `names`.
pub fn has_all(header: &[String], names: &[&str]) -> bool {
    let sq: Vec<String> = header.iter().map(|h| squash(h)).collect();
    names.iter().all(|n| sq.iter().any(|h| h == n))
}

/// A CheXpert-style label cell: `1.0` / `0.0` / `-1.0` (also `1`, `0`, `-1`).
pub fn label_value(s: &str) -> Option<i8> {
    match s.trim() {
        "1.0" | "1" | "1.00" => Some(1),
        "0.0" | "0" | "-0.0" | "0.00" => Some(0),
        "-1.0" | "-1" | "-1.00" => Some(-1),
        other => {
            let v = other.parse::<f64>().ok()?;
            [1i8, 0, -1].into_iter().find(|&x| f64::from(x) == v)
        }
    }
}

/// The year of a `YYYYMMDD` date (month and day checked for range).
pub fn year_of_date(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let month: u32 = s[4..6].parse().ok()?;
    let day: u32 = s[6..8].parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(year)
}

/// A `YYYYMMDD` date (a `.0` suffix tolerated) as the number YYYYMMDD, which sorts
/// like the date; None when it is not a valid date.
pub fn date_key(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix(".0").unwrap_or(s);
    year_of_date(s)?;
    s.parse().ok()
}

/// Whether `view` counts as frontal: PA, AP and AP_SUPINE are; LATERAL and OTHER are
/// not; unknown is unknown.
pub fn frontal_of(view: Option<&str>) -> Option<bool> {
    view.map(|v| matches!(v, "PA" | "AP" | "AP_SUPINE"))
}

/// Distinct `label_sources` of some label rows, in first-seen order.
pub fn label_sources(labels: &[crate::datasets::XrLabel]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        if !out.contains(&l.source) {
            out.push(l.source.clone());
        }
    }
    out
}

/// A row's image id, claimed in `seen`: an empty id or one an earlier row (of this
/// file or an earlier one) already claimed refuses the row, with a `data_issues` row
/// naming the column `field` and, for a duplicate, where the id was first seen.
pub fn claim_id<'t>(
    seen: &mut polars::prelude::PlHashMap<&'t str, (&'t str, u64)>,
    id: Option<&'t str>,
    (src, line, field): (&'t str, u64, &str),
    issues: &mut crate::input::issues::Issues,
) -> Option<&'t str> {
    let Some(id) = id else {
        issues.push(
            src,
            Some(line),
            Some(field),
            None,
            format!("{field} is empty; row refused"),
        );
        return None;
    };
    if let Some((file, first)) = seen.get(id) {
        let msg = format!("duplicate {field} (first in {file} line {first}); row refused");
        issues.push(src, Some(line), Some(field), Some(id), msg);
        return None;
    }
    seen.insert(id, (src, line));
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values() {
        assert_eq!(label_value("1.0"), Some(1));
        assert_eq!(label_value("0"), Some(0));
        assert_eq!(label_value(" -1.0 "), Some(-1));
        assert_eq!(label_value("2.0"), None);
        assert_eq!(label_value("yes"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(year_of_date("20140203"), Some(2014));
        assert_eq!(year_of_date("21800506"), Some(2180));
        assert_eq!(year_of_date("2014023"), None);
        assert_eq!(year_of_date("20141303"), None);
        assert_eq!(year_of_date("2014-02-03"), None);
    }
}
