//! Small pieces shared by the dataset readers: column checks, value parsing with
//! `data_issues` rows, and an insertion-ordered image list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::csv::CsvTable;
use crate::input::issues::Issues;

use super::XrImage;

/// Finds every required column of `table`, or one input error naming the file and
/// all the missing columns (so a file given as the wrong dataset is recognised).
/// `wanted` is (name as documented, squashed names accepted).
pub fn require_columns(table: &CsvTable, wanted: &[(&str, &[&str])]) -> Result<Vec<usize>> {
    let mut found = Vec::with_capacity(wanted.len());
    let mut missing = Vec::new();
    for (label, names) in wanted {
        match table.find(names) {
            Some(i) => found.push(i),
            None => missing.push(*label),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let shown: Vec<&str> = table.header.iter().take(20).map(String::as_str).collect();
    Err(Error::input(
        &table.path,
        format!(
            "missing required column{} {}; the header has: {}{}",
            if missing.len() > 1 { "s" } else { "" },
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", "),
            shown.join(", "),
            if table.header.len() > 20 { ", ..." } else { "" }
        ),
    ))
}

/// The one path of a single-file dataset.
pub fn one_path<'a>(dataset: &str, paths: &'a [PathBuf]) -> Result<&'a Path> {
    match paths {
        [p] => Ok(p.as_path()),
        _ => Err(Error::Usage(format!(
            "dataset '{dataset}' takes exactly one file, got {}",
            paths.len()
        ))),
    }
}

/// `M`/`F` (also `Male`/`Female`, any case); anything else is None.
pub fn parse_sex(raw: &str) -> Option<&'static str> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "M" | "MALE" => Some("M"),
        "F" | "FEMALE" => Some("F"),
        _ => None,
    }
}

/// Sex of one record: a value that is not M/F (or is absent) is NULL with an issue.
pub fn sex_or_issue(
    raw: Option<&str>,
    source: &str,
    line: u64,
    field: &str,
    issues: &mut Issues,
) -> Option<&'static str> {
    let sex = raw.and_then(parse_sex);
    if sex.is_none() {
        issues.push(
            source,
            Some(line),
            Some(field),
            raw,
            match raw {
                Some(_) => "sex is not M or F: set to NULL",
                None => "sex missing: NULL",
            },
        );
    }
    sex
}

/// Age in years: a number in 0..=120 (fractions allowed). Non-numbers, negative,
/// non-finite and over-120 values are NULL with an issue; absent is NULL silently.
pub fn age_or_issue(
    raw: Option<&str>,
    source: &str,
    line: u64,
    field: &str,
    issues: &mut Issues,
) -> Option<f32> {
    let raw = raw?;
    let what = match raw.trim().parse::<f64>() {
        Ok(a) if a.is_finite() && (0.0..=120.0).contains(&a) => return Some(a as f32),
        Ok(a) if a > 120.0 => "age over 120: set to NULL",
        Ok(_) => "age negative or not finite: set to NULL",
        Err(_) => "age is not a number: set to NULL",
    };
    issues.push(source, Some(line), Some(field), Some(raw), what);
    None
}

/// A finite number, or None.
pub fn parse_finite(raw: &str) -> Option<f64> {
    raw.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Images in order of first appearance, unique by id.
#[derive(Debug, Default)]
pub struct ImageList {
    pub images: Vec<XrImage>,
    index: HashMap<String, usize>,
}

impl ImageList {
    /// Position of `id`, if listed.
    pub fn get(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Whether `id` is listed.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Adds `image` unless its id is listed; returns its position and whether it is new.
    pub fn add(&mut self, image: XrImage) -> (usize, bool) {
        if let Some(&i) = self.index.get(&image.image_id) {
            return (i, false);
        }
        let i = self.images.len();
        self.index.insert(image.image_id.clone(), i);
        self.images.push(image);
        (i, true)
    }

    /// A mutable image by position.
    pub fn at(&mut self, i: usize) -> &mut XrImage {
        &mut self.images[i]
    }
}

/// An image row with only dataset and id (and path) set.
pub fn bare_image(dataset: &'static str, image_id: &str, path: Option<String>) -> XrImage {
    XrImage {
        dataset,
        image_id: image_id.to_string(),
        patient_id: None,
        study_id: None,
        study_order: None,
        view: None,
        frontal: None,
        sex: None,
        age: None,
        split: None,
        path,
    }
}

/// Whether a view is frontal (PA, AP, AP_SUPINE); None when unknown.
pub fn frontal_of(view: Option<&str>) -> Option<bool> {
    view.map(|v| matches!(v, "PA" | "AP" | "AP_SUPINE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sex_and_age() {
        let mut issues = Issues::default();
        assert_eq!(sex_or_issue(Some("F"), "f", 2, "s", &mut issues), Some("F"));
        assert_eq!(sex_or_issue(Some("O"), "f", 3, "s", &mut issues), None);
        assert_eq!(sex_or_issue(None, "f", 4, "s", &mut issues), None);
        assert_eq!(issues.len(), 2);
        assert_eq!(
            age_or_issue(Some("43"), "f", 2, "a", &mut issues),
            Some(43.0)
        );
        assert_eq!(
            age_or_issue(Some("120"), "f", 2, "a", &mut issues),
            Some(120.0)
        );
        assert_eq!(age_or_issue(None, "f", 2, "a", &mut issues), None);
        assert_eq!(issues.len(), 2);
        for bad in ["155", "-1", "x", "NaN", "inf"] {
            assert_eq!(age_or_issue(Some(bad), "f", 5, "a", &mut issues), None);
        }
        assert_eq!(issues.len(), 7);
        assert_eq!(issues.rows()[2].value.as_deref(), Some("155"));
        assert_eq!(issues.rows()[2].line, Some(5));
    }
}
