//! Small pieces shared by the dataset readers: column checks, value parsing with
//! `data_issues` rows, ids claimed once, and an insertion-ordered image list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::csv::{CsvTable, squash};
use crate::input::issues::Issues;

use super::{ImageRow, Shared};

/// Ages above this many years are implausible and become NULL (as for NIH).
pub const MAX_AGE: f32 = 120.0;

/// A column a reader needs: (name as documented, squashed aliases).
pub type Col<'a> = (&'a str, &'a [&'a str]);

/// Reads `path` as CSV with only the fields of `cols` parsed (their positions
/// returned); when any is missing, the error of [`require_all`].
pub fn read_columns(
    path: &Path,
    issues: &mut Issues,
    what: &str,
    cols: &[Col],
) -> Result<(CsvTable, Vec<usize>)> {
    let (table, positions) = CsvTable::read_picking(path, issues, |t| {
        let pos = require_all(t, what, cols)?;
        Ok((pos.clone(), Some(pos)))
    })?;
    table.refuse_if_empty()?;
    Ok((table, positions))
}

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
    let found: Vec<usize> = found.into_iter().map(|f| f.unwrap_or(0)).collect();
    for (&pos, (_, names)) in found.iter().zip(cols) {
        t.check_named_once(pos, names)?;
    }
    Ok(found)
}

/// The error for a file that lacks columns a dataset needs.
pub fn missing_columns(path: &Path, what: &str, missing: &[&str], header: &[String]) -> Error {
    Error::input(
        path,
        format!(
            "not a {what} file: missing column(s) {}; the header has: {}{}",
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", "),
            header
                .iter()
                .take(20)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            if header.len() > 20 { ", ..." } else { "" }
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

/// The year of a `YYYYMMDD` date of the calendar.
pub fn year_of_date(s: &str) -> Option<i32> {
    date_parts(s).map(|(year, _, _)| year)
}

/// A `YYYYMMDD` date's year, month and day (a `.0` suffix tolerated); None unless it
/// is a day of the calendar (`20140230` is not).
pub fn date_parts(s: &str) -> Option<(i32, u32, u32)> {
    let s = s.trim();
    let s = s.strip_suffix(".0").unwrap_or(s);
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let month: u32 = s[4..6].parse().ok()?;
    let day: u32 = s[6..8].parse().ok()?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&day).then_some((year, month, day))
}

/// A `YYYYMMDD` date (a `.0` suffix tolerated) as the number YYYYMMDD, which sorts
/// like the date; None when it is not a valid date.
pub fn date_key(s: &str) -> Option<i64> {
    let (year, month, day) = date_parts(s)?;
    Some(i64::from(year) * 10_000 + i64::from(month) * 100 + i64::from(day))
}

/// Whether `view` is frontal: PA, AP and AP_SUPINE are, LATERAL is not; OTHER (a
/// costal or oblique view, a view code that contradicts its row) and unknown are
/// unknown, so that `frontal = false` means lateral in every dataset.
pub fn frontal_of(view: Option<&str>) -> Option<bool> {
    match view? {
        "PA" | "AP" | "AP_SUPINE" => Some(true),
        "LATERAL" => Some(false),
        _ => None,
    }
}

/// Distinct `label_sources` of some label rows, in first-seen order.
pub fn label_sources(labels: &[crate::datasets::LabelRow]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        if !out.iter().any(|s| *s == *l.source) {
            out.push(l.source.to_string());
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

/// What a box row means, by which [`RepeatedRows`] tells the same box given twice:
/// its image, its label as the label map reads it (any case and spacing), its reader
/// and its geometry as numbers, so that `1,2,30,40` and `1.0,2.0,30.0,40.0`, or
/// `Cardiomegaly` and `cardiomegaly`, are one box. The image id is compared as written,
/// as every reader keys its images.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoxKey {
    image: String,
    label: String,
    reader: String,
    /// The coordinates' bits, or a run-length code's integers.
    numbers: Vec<u64>,
}

impl BoxKey {
    /// A rectangle of `image`: its `label` as written, its `reader` (normalised by the
    /// caller; "" where none) and its parsed `coordinates`.
    pub fn rectangle(image: &str, label: &str, reader: &str, coordinates: &[f64]) -> Self {
        // -0 and 0 are one coordinate (their bits differ).
        let bits = coordinates
            .iter()
            .map(|&v| if v == 0.0 { 0 } else { v.to_bits() })
            .collect();
        Self::of_numbers(image, label, reader, bits)
    }

    /// A mask region of `image` by its run-length code's integers (so `5 10` and
    /// `5  10` are one region).
    pub fn region(image: &str, label: &str, code: &[u64]) -> Self {
        Self::of_numbers(image, label, "", code.to_vec())
    }

    fn of_numbers(image: &str, label: &str, reader: &str, numbers: Vec<u64>) -> Self {
        BoxKey {
            image: image.to_string(),
            label: super::label_map::normalised(label),
            reader: reader.to_string(),
            numbers,
        }
    }
}

/// The boxes read so far, by what they mean ([`BoxKey`]): a row repeating an earlier
/// box (the same box of the same image, label and reader twice) would count the box
/// twice; it is skipped with a `data_issues` row naming the first.
#[derive(Default)]
pub struct RepeatedRows(HashMap<BoxKey, u64>);

impl RepeatedRows {
    /// Whether the box `key` of the row at `line` is the first of its kind.
    pub fn first(
        &mut self,
        key: BoxKey,
        (src, line, field): (&str, u64, &str),
        issues: &mut Issues,
    ) -> bool {
        if let Some(first) = self.0.get(&key) {
            let msg = format!("the same box as line {first}; skipped");
            issues.push(src, Some(line), Some(field), None, msg);
            return false;
        }
        self.0.insert(key, line);
        true
    }
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
                Some(_) => crate::input::issues::SEX_NOT_READ,
                None => "sex missing; set to NULL",
            },
        );
    }
    sex
}

/// Age in years: a number in 0..=120 (fractions allowed; `-0` is 0), or DICOM's
/// `043Y` form read with a row. Non-numbers, negative, non-finite and over-120 values
/// are NULL with an issue; absent is NULL with one too.
pub fn age_or_issue(
    raw: Option<&str>,
    source: &str,
    line: u64,
    field: &str,
    issues: &mut Issues,
) -> Option<f32> {
    let Some(raw) = raw else {
        issues.push(
            source,
            Some(line),
            Some(field),
            None,
            "age is empty; set to NULL",
        );
        return None;
    };
    // DICOM's own age form, `043Y` (or months, weeks, days), read in years with a row.
    if let Some(years) = dicom_age_years(raw) {
        issues.push(
            source,
            Some(line),
            Some(field),
            Some(raw),
            format!("age in DICOM's form read as {years} years"),
        );
        return Some(years);
    }
    let what = match raw.trim().parse::<f64>() {
        // `-0` is 0: a sign on nothing is no age of its own.
        Ok(0.0) => return Some(0.0),
        Ok(a) if a.is_finite() && (0.0..=120.0).contains(&a) => return Some(a as f32),
        Ok(a) if a > 120.0 => "age over 120; set to NULL",
        Ok(_) => "age negative or not finite; set to NULL",
        Err(_) => "age is not a number; set to NULL",
    };
    issues.push(source, Some(line), Some(field), Some(raw), what);
    None
}

/// Years of a DICOM age string (`043Y`, `006M`, `012W`, `030D`: three digits and a
/// unit), None for anything else or over 120.
fn dicom_age_years(raw: &str) -> Option<f32> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at_checked(raw.len().checked_sub(1)?)?;
    if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: f32 = digits.parse().ok()?;
    let years = match unit {
        "Y" | "y" => n,
        "M" | "m" => n / 12.0,
        "W" | "w" => n * 7.0 / 365.25,
        "D" | "d" => n / 365.25,
        _ => return None,
    };
    (years <= 120.0).then_some(years)
}

/// A finite number, or None.
pub fn parse_finite(raw: &str) -> Option<f64> {
    raw.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Images in order of first appearance, unique by id.
#[derive(Debug, Default)]
pub struct ImageList {
    pub images: Vec<ImageRow>,
    index: HashMap<Shared, usize>,
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
    pub fn add(&mut self, image: ImageRow) -> (usize, bool) {
        if let Some(&i) = self.index.get(&*image.image_id) {
            return (i, false);
        }
        let i = self.images.len();
        self.index.insert(image.image_id.clone(), i);
        self.images.push(image);
        (i, true)
    }

    /// A mutable image by position.
    pub fn at(&mut self, i: usize) -> &mut ImageRow {
        &mut self.images[i]
    }
}

/// Whether an image path would lead out of the release's root folder when joined to
/// it (`export --image-root`): absolute, or with a `..` part.
pub fn leaves_root(path: &str) -> bool {
    path.starts_with(['/', '\\'])
        || path.split(['/', '\\']).any(|part| part == "..")
        || path.as_bytes().get(1) == Some(&b':')
}

/// What a `data_issues` row says of an image path that leads out of the release's
/// folder.
pub const PATH_LEAVES_ROOT: &str =
    "image path leads out of the release's folder (absolute or with ..); path set to NULL";

/// `path`, or None with a `data_issues` row at `at` (file, line, column) when it
/// would lead out of the release's folder (see [`leaves_root`]).
pub fn path_inside_root(
    path: Shared,
    issues: &mut Issues,
    (source, line, column): (&str, u64, &str),
) -> Option<Shared> {
    if !leaves_root(&path) {
        return Some(path);
    }
    issues.push(
        source,
        Some(line),
        Some(column),
        Some(&path),
        PATH_LEAVES_ROOT,
    );
    None
}

/// An image row with only dataset and id (and path) set.
pub fn bare_image(dataset: &'static str, image_id: &str, path: Option<Shared>) -> ImageRow {
    ImageRow {
        dataset,
        image_id: image_id.into(),
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

/// Side of the NIH and RSNA images their box coordinates refer to.
pub const BOX_IMAGE_SIZE: f64 = 1024.0;

/// What is wrong with a box's geometry in a 1024 × 1024 image (NIH's and RSNA's), if
/// anything.
pub fn box_geometry_problem([x, y, w, h]: [f64; 4]) -> Option<&'static str> {
    if x < 0.0 || y < 0.0 {
        Some("negative coordinate")
    } else if w <= 0.0 || h <= 0.0 {
        Some("zero or negative width or height")
    } else if x + w > BOX_IMAGE_SIZE || y + h > BOX_IMAGE_SIZE {
        Some("box extends outside the 1024 × 1024 image")
    } else {
        None
    }
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
        // Days of the calendar only: February 30th, April 31st and a February 29th
        // outside a leap year are not dates (2000 was a leap year, 1900 was not).
        for not_a_day in ["20140230", "20140431", "19000229", "20140001", "20140100"] {
            assert_eq!(date_key(not_a_day), None, "{not_a_day}");
        }
        assert_eq!(date_key("20000229"), Some(20000229));
        assert_eq!(date_key("20121231.0"), Some(20121231));
        assert_eq!(date_parts("20160229"), Some((2016, 2, 29)));
    }

    /// A box is what its row means: the label in any case and spacing, -0 as 0; the
    /// image, the reader and each number tell boxes apart.
    #[test]
    fn box_keys() {
        let key = |label: &str, reader: &str, v: &[f64]| BoxKey::rectangle("a", label, reader, v);
        let one = key("Pleural effusion", "R1", &[0.0, 2.0]);
        assert_eq!(one, key(" pleural  EFFUSION", "R1", &[-0.0, 2.0]));
        assert_ne!(one, key("Pleural effusion", "R2", &[0.0, 2.0]));
        assert_ne!(one, key("Pleural effusion", "R1", &[0.0, 2.5]));
        assert_ne!(
            one,
            BoxKey::rectangle("b", "Pleural effusion", "R1", &[0.0, 2.0])
        );
        let mut issues = Issues::default();
        let mut seen = RepeatedRows::default();
        assert!(seen.first(one.clone(), ("f", 2, "id"), &mut issues));
        assert!(!seen.first(one, ("f", 3, "id"), &mut issues));
        assert_eq!(issues.rows()[0].issue, "the same box as line 2; skipped");
        assert_eq!(issues.rows()[0].line, Some(3));
    }

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
        // `-0` is 0, not a negative zero that prints as `-0.0`.
        let zero = age_or_issue(Some("-0"), "f", 2, "a", &mut issues).unwrap();
        assert!(zero == 0.0 && zero.is_sign_positive());
        // An empty age is said, as an empty sex is.
        assert_eq!(age_or_issue(None, "f", 2, "a", &mut issues), None);
        assert_eq!(issues.len(), 3);
        for bad in ["155", "-1", "x", "NaN", "inf", "43YY"] {
            assert_eq!(age_or_issue(Some(bad), "f", 5, "a", &mut issues), None);
        }
        assert_eq!(issues.len(), 9);
        assert_eq!(issues.rows()[3].value.as_deref(), Some("155"));
        assert_eq!(issues.rows()[3].line, Some(5));
        // DICOM's form, read with a row.
        assert_eq!(
            age_or_issue(Some("043Y"), "f", 6, "a", &mut issues),
            Some(43.0)
        );
        assert_eq!(
            age_or_issue(Some("018M"), "f", 7, "a", &mut issues),
            Some(1.5)
        );
        assert_eq!(issues.len(), 11);
    }
}
