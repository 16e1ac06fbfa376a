//! `Data_Entry_2017*.csv` → `images`, `findings`, `patients`.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use polars::prelude::{InitHashMaps, PlHashMap};

use crate::error::Result;
use crate::findings::{FINDINGS, Label, classify, column_name};
use crate::input::csv::CsvTable;
use crate::input::issues::Issues;
use crate::input::table::{
    batch, bools, f64s, i8s, i16s, i32s, list_utf8, optional_list_utf8, text, utf8,
};

/// Ages above this many years are implausible and become NULL.
pub const MAX_AGE: i64 = 120;

/// One cleaned row of the metadata file.
#[derive(Debug, Clone)]
pub struct Image {
    /// `00000001_000.png`
    pub image_index: String,
    /// Patient number.
    pub patient_id: i32,
    /// The source's `Follow-up #`.
    pub follow_up: i32,
    /// Age in whole years, NULL where implausible.
    pub age: Option<i16>,
    /// `M` or `F`.
    pub sex: Option<&'static str>,
    /// `PA` or `AP`.
    pub view_position: Option<&'static str>,
    /// Original width in pixels.
    pub orig_width: Option<i32>,
    /// Original height in pixels.
    pub orig_height: Option<i32>,
    /// mm per pixel, x.
    pub pixel_spacing_x: Option<f64>,
    /// mm per pixel, y.
    pub pixel_spacing_y: Option<f64>,
    /// The source string, unchanged.
    pub finding_labels: String,
    /// Normalised findings, sorted, unique.
    pub labels: Vec<&'static str>,
    /// Official split, when lists were given.
    pub split: Option<&'static str>,
    /// Source line.
    pub line: u64,
}

/// What the metadata file looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// The original 2017 release: ages with units, zero-padded ids.
    Original2017,
    /// The 2020 label revision: integer ages and ids.
    Revised2020,
}

impl Revision {
    /// The name recorded in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Revision::Original2017 => "2017",
            Revision::Revised2020 => "2020",
        }
    }

    /// The label source of this release in `dataset_labels` (`nih_2017`, `nih_2020`).
    pub fn source(self) -> &'static str {
        match self {
            Revision::Original2017 => super::RELEASE_SOURCES[0],
            Revision::Revised2020 => super::RELEASE_SOURCES[1],
        }
    }
}

/// The metadata file, cleaned.
pub struct Metadata {
    /// Rows in file order.
    pub images: Vec<Image>,
    /// Which release the file looks like.
    pub revision: Revision,
}

struct Columns {
    index: usize,
    labels: usize,
    follow_up: usize,
    patient: usize,
    age: usize,
    sex: usize,
    view: usize,
    width: Option<usize>,
    height: Option<usize>,
    spacing_x: Option<usize>,
    spacing_y: Option<usize>,
}

fn find_columns(t: &CsvTable, issues: &mut Issues) -> Result<Columns> {
    // The NIH header splits `OriginalImage[Width,Height]` into two fields
    // (`OriginalImage[Width`, `Height]`; quoted as one, the CSV reader splits it too).
    let first = |names: [&str; 2]| t.find(&names[..1]).or(t.find(&names[1..]));
    let width = first(["originalimagewidth", "width"]);
    let height = t.find(&["height", "originalimageheight"]);
    let spacing_x = first(["originalimagepixelspacingx", "pixelspacingx"]);
    let spacing_y = t.find(&["y", "pixelspacingy", "originalimagepixelspacingy"]);
    for (name, pos) in [
        ("OriginalImage[Width", width),
        ("Height]", height),
        ("OriginalImagePixelSpacing[x", spacing_x),
        ("y]", spacing_y),
    ] {
        if pos.is_none() {
            issues.push(
                &t.source,
                Some(1),
                Some(name),
                None,
                "column not in the header; values set to NULL",
            );
        }
    }
    Ok(Columns {
        index: t.require("Image Index", &["imageindex", "image"])?,
        labels: t.require(
            "Finding Labels",
            &["findinglabels", "findinglabel", "labels"],
        )?,
        follow_up: t.require("Follow-up #", &["followup", "followupnumber"])?,
        patient: t.require("Patient ID", &["patientid"])?,
        age: t.require("Patient Age", &["patientage", "age"])?,
        sex: t.require(
            "Patient Gender",
            &["patientgender", "patientsex", "gender", "sex"],
        )?,
        view: t.require("View Position", &["viewposition", "view"])?,
        width,
        height,
        spacing_x,
        spacing_y,
    })
}

/// Reads and cleans the metadata file.
pub fn read(path: &Path, issues: &mut Issues) -> Result<Metadata> {
    let start = std::time::Instant::now();
    let t = CsvTable::read(path, issues)?;
    crate::trace("  parse csv", start);
    let c = find_columns(&t, issues)?;
    let get = |pos: Option<usize>| -> Result<Vec<Option<&str>>> {
        match pos {
            Some(p) => t.values(p),
            None => Ok(vec![None; t.len()]),
        }
    };
    let (index, labels, follow, patient) = (
        t.values(c.index)?,
        t.values(c.labels)?,
        t.values(c.follow_up)?,
        t.values(c.patient)?,
    );
    let (age, sex, view) = (t.values(c.age)?, t.values(c.sex)?, t.values(c.view)?);
    let (width, height) = (get(c.width)?, get(c.height)?);
    let (sx, sy) = (get(c.spacing_x)?, get(c.spacing_y)?);

    crate::trace("  column values", start);
    // Pass 1, in file order: the row's identity (name, patient, follow-up) and
    // duplicate names, which must be decided sequentially.
    let mut keys: Vec<Option<(i32, i32)>> = vec![None; t.len()];
    {
        let mut row = RowCleaner {
            source: &t.source,
            issues: &mut *issues,
            line: 0,
        };
        let mut seen: PlHashMap<&str, u64> = PlHashMap::with_capacity(t.len());
        for (i, key) in keys.iter_mut().enumerate() {
            row.line = t.lines[i];
            let Some(image_index) = row.required(t.name(c.index), index[i]) else {
                continue;
            };
            if image_index.contains(['/', '\\']) || image_index == "." || image_index == ".." {
                let msg =
                    "Image Index is not a file name (it has a / or \\, or is . or ..); row refused";
                row.refuse(t.name(c.index), Some(image_index), msg.to_string());
                continue;
            }
            if let Some(first) = seen.get(image_index) {
                let msg = format!("duplicate Image Index (first on line {first}); row refused");
                row.refuse(t.name(c.index), Some(image_index), msg);
                continue;
            }
            let Some(patient_id) = row.int(t.name(c.patient), patient[i]) else {
                continue;
            };
            let Some(follow_up) = row.int(t.name(c.follow_up), follow[i]) else {
                continue;
            };
            seen.insert(image_index, row.line);
            *key = Some((patient_id, follow_up));
        }
    }
    // Pass 2, in parallel over ranges of rows: every other field.
    let clean_range = |range: std::ops::Range<usize>| -> (Vec<Image>, Issues) {
        let mut local = Issues::default();
        let mut row = RowCleaner {
            source: &t.source,
            issues: &mut local,
            line: 0,
        };
        let mut out = Vec::with_capacity(range.len());
        for i in range {
            let Some((patient_id, follow_up)) = keys[i] else {
                continue;
            };
            row.line = t.lines[i];
            out.push(Image {
                patient_id,
                follow_up,
                age: row.age(t.name(c.age), age[i]),
                sex: row.sex(t.name(c.sex), sex[i]),
                view_position: row.view(t.name(c.view), view[i]),
                orig_width: row.opt_int(c.width.map(|p| t.name(p)), width[i]),
                orig_height: row.opt_int(c.height.map(|p| t.name(p)), height[i]),
                pixel_spacing_x: row.opt_float(c.spacing_x.map(|p| t.name(p)), sx[i]),
                pixel_spacing_y: row.opt_float(c.spacing_y.map(|p| t.name(p)), sy[i]),
                labels: row.labels(t.name(c.labels), labels[i]),
                finding_labels: labels[i].unwrap_or("").to_string(),
                split: None,
                line: row.line,
                image_index: index[i].unwrap_or("").to_string(),
            });
        }
        (out, local)
    };
    let parts = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(1);
    let n = t.len();
    let step = n.div_ceil(parts).max(1);
    let cleaned: Vec<(Vec<Image>, Issues)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(step)
            .map(|a| {
                let clean_range = &clean_range;
                s.spawn(move || clean_range(a..(a + step).min(n)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("row cleaner does not panic"))
            .collect()
    });
    let mut images = Vec::with_capacity(t.len());
    for (part, part_issues) in cleaned {
        images.extend(part);
        issues.extend(part_issues);
    }
    crate::trace("  clean rows", start);
    // The release is the one most values are written in (2017: `058Y` and `00000001`;
    // 2020: `57` and `1`), so that a few odd values (`abc`, `NaN`) do not change it.
    let with_unit = |a: &&&str| {
        a.len() > 1
            && a[..a.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && a.ends_with(['Y', 'M', 'D'])
    };
    let digits = |a: &&&str| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit());
    let ages_2017 = age.iter().flatten().filter(with_unit).count();
    let ages_2020 = age.iter().flatten().filter(digits).count();
    let padded = patient
        .iter()
        .flatten()
        .filter(|p| p.len() > 1 && p.starts_with('0'))
        .count();
    let unpadded = patient
        .iter()
        .flatten()
        .filter(|p| !p.starts_with('0'))
        .count();
    let revision = if ages_2017 > ages_2020 || (ages_2017 == ages_2020 && padded > unpadded) {
        Revision::Original2017
    } else {
        Revision::Revised2020
    };
    if images.is_empty() {
        return Err(crate::error::Error::input(
            path,
            "no image rows: the file has a header but no usable records (nothing was written)",
        ));
    }
    // An age in the other release's form is read all the same, and said.
    for (i, value) in age.iter().enumerate() {
        let (Some(value), Some(_)) = (value, keys[i]) else {
            continue;
        };
        let said = match revision {
            Revision::Revised2020 if with_unit(&value) && value.ends_with('Y') => {
                "age written as the 2017 release writes it, in a 2020 file; converted to years"
            }
            Revision::Original2017 if digits(&value) => {
                "age without the 2017 release's unit (Y, M or D), in a 2017 file; read as years"
            }
            _ => continue,
        };
        issues.push(
            &t.source,
            Some(t.lines[i]),
            Some(t.name(c.age)),
            Some(value),
            said,
        );
    }
    Ok(Metadata { images, revision })
}

/// Parses the fields of one row, recording every change in `data_issues`.
struct RowCleaner<'a> {
    source: &'a str,
    issues: &'a mut Issues,
    line: u64,
}

impl RowCleaner<'_> {
    fn note(&mut self, field: &str, value: Option<&str>, issue: impl Into<String>) {
        self.issues
            .push(self.source, Some(self.line), Some(field), value, issue);
    }

    fn refuse(&mut self, field: &str, value: Option<&str>, why: impl Into<String>) {
        self.note(field, value, why);
    }

    fn required<'v>(&mut self, field: &str, v: Option<&'v str>) -> Option<&'v str> {
        if v.is_none() {
            self.refuse(field, None, "required value is empty; row refused");
        }
        v
    }

    fn int(&mut self, field: &str, v: Option<&str>) -> Option<i32> {
        let s = self.required(field, v)?;
        match s.parse::<i32>() {
            Ok(n) if n >= 0 => Some(n),
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                let why = format!("over {}, the largest number read; row refused", i32::MAX);
                self.refuse(field, Some(s), why);
                None
            }
            _ => {
                self.refuse(field, Some(s), "not a non-negative integer; row refused");
                None
            }
        }
    }

    /// The value of an optional column: NULL where the file has no such column;
    /// where it has one but the value is empty, NULL with a row, as age's.
    fn present<'v>(&mut self, field: &str, v: Option<&'v str>, what: &str) -> Option<&'v str> {
        if v.is_none() {
            self.note(field, None, format!("{what} missing; set to NULL"));
        }
        v
    }

    fn opt_int(&mut self, field: Option<&str>, v: Option<&str>) -> Option<i32> {
        let field = field?;
        let s = self.present(field, v, "size")?;
        match s.parse::<i32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                self.note(field, Some(s), "not a positive integer; set to NULL");
                None
            }
        }
    }

    fn opt_float(&mut self, field: Option<&str>, v: Option<&str>) -> Option<f64> {
        let field = field?;
        let s = self.present(field, v, "pixel spacing")?;
        match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Some(x),
            _ => {
                self.note(field, Some(s), "not a positive number; set to NULL");
                None
            }
        }
    }

    /// `58`, `058Y`, `011M`, `001D`, `12W` → whole years; over 120 → NULL.
    fn age(&mut self, field: &str, v: Option<&str>) -> Option<i16> {
        let Some(s) = v else {
            self.note(field, None, "age missing; set to NULL");
            return None;
        };
        let (num, unit) = match s.char_indices().last() {
            Some((i, u)) if u.is_ascii_alphabetic() => (&s[..i], u.to_ascii_uppercase()),
            _ => (s, 'Y'),
        };
        let value = num
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0);
        let per_year = match unit {
            'Y' => Some(1.0),
            'M' => Some(12.0),
            'W' => Some(52.1775),
            'D' => Some(365.25),
            _ => None,
        };
        let (Some(value), Some(per_year)) = (value, per_year) else {
            self.note(field, Some(s), "not an age; set to NULL");
            return None;
        };
        let exact_years = (value / per_year).floor();
        if exact_years > MAX_AGE as f64 {
            // Said as written: a huge value (`1e30`) would saturate as an integer.
            self.note(
                field,
                Some(s),
                format!("implausible age ({s}: over {MAX_AGE} years); set to NULL"),
            );
            return None;
        }
        let years = exact_years as i64;
        if unit != 'Y' {
            let unit_name = match unit {
                'M' => "months",
                'W' => "weeks",
                _ => "days",
            };
            self.note(
                field,
                Some(s),
                format!("age given in {unit_name}; converted to {years} whole years"),
            );
        } else if value.fract() != 0.0 {
            self.note(
                field,
                Some(s),
                format!("fractional age; truncated to {years}"),
            );
        } else if !is_plain_age(s) {
            self.note(
                field,
                Some(s),
                format!("age not written as `58` or `058Y`; read as {years}"),
            );
        }
        Some(years as i16)
    }

    fn sex(&mut self, field: &str, v: Option<&str>) -> Option<&'static str> {
        let s = self.present(field, v, "sex")?;
        let norm = match s.to_ascii_uppercase().as_str() {
            "M" | "MALE" => "M",
            "F" | "FEMALE" => "F",
            _ => {
                self.note(field, Some(s), crate::input::issues::SEX_NOT_READ);
                return None;
            }
        };
        if norm != s {
            self.note(field, Some(s), format!("normalised to '{norm}'"));
        }
        Some(norm)
    }

    fn view(&mut self, field: &str, v: Option<&str>) -> Option<&'static str> {
        let s = self.present(field, v, "view")?;
        let norm = if s.eq_ignore_ascii_case("PA") {
            "PA"
        } else if s.eq_ignore_ascii_case("AP") {
            "AP"
        } else {
            self.note(field, Some(s), "not PA or AP; set to NULL");
            return None;
        };
        if norm != s {
            self.note(field, Some(s), format!("normalised to '{norm}'"));
        }
        Some(norm)
    }

    fn labels(&mut self, field: &str, v: Option<&str>) -> Vec<&'static str> {
        let Some(s) = v.filter(|s| !says_nothing(s)) else {
            self.note(
                field,
                v,
                "empty Finding Labels; image kept without labels (every finding unknown, not normal)",
            );
            return Vec::new();
        };
        let (labels, notes) = parse_labels(s);
        for n in notes {
            self.note(field, Some(s), n);
        }
        labels
    }
}

/// Splits a pipe-separated label string into sorted, unique findings, with a note
/// for every spelling changed, duplicate removed or label left out.
pub fn parse_labels(s: &str) -> (Vec<&'static str>, Vec<String>) {
    let mut labels = Vec::new();
    let mut notes = Vec::new();
    let mut no_finding = false;
    for part in s.split('|').map(str::trim) {
        // data_issues lists a few notes per field (Issues::push); more are not kept.
        if notes.len() > 32 {
            notes.truncate(32);
        }
        match classify(part) {
            Label::Exact(f) => labels.push(f),
            Label::Normalised(f) => {
                notes.push(format!("label '{part}' normalised to '{f}'"));
                labels.push(f);
            }
            Label::NoFinding => no_finding = true,
            Label::Unknown if part.is_empty() => {
                notes.push("empty label between '|' separators; ignored".to_string())
            }
            Label::Unknown => notes.push(format!(
                "unknown label '{part}' (not one of the 14 findings); left out of labels, kept as a raw label: the image is not normal"
            )),
        }
    }
    labels.sort_unstable();
    let before = labels.len();
    labels.dedup();
    if labels.len() < before {
        notes.push("duplicate label; kept once".to_string());
    }
    if no_finding && !labels.is_empty() {
        notes.push("'No Finding' together with findings; 'No Finding' ignored".to_string());
    }
    // First, so that the cap on a field's data_issues rows never hides it.
    let unknown = unknown_labels(s).count();
    if unknown > MAX_UNKNOWN_LABELS {
        notes.insert(
            0,
            format!(
                "{unknown} labels outside the 14; the first {MAX_UNKNOWN_LABELS} are kept as raw labels, the other {} dropped",
                unknown - MAX_UNKNOWN_LABELS
            ),
        );
    }
    (labels, notes)
}

/// The most labels outside the 14 one image keeps as raw label rows: a field of a
/// million `|`-separated words is not a million label rows.
pub const MAX_UNKNOWN_LABELS: usize = 20;

/// The labels of a `Finding Labels` field that are none of the 14 findings and not
/// `No Finding` (empty parts left out): the release states something of the image
/// that cxr cannot name, so it is not normal.
pub fn unknown_labels(finding_labels: &str) -> impl Iterator<Item = &str> {
    finding_labels
        .split('|')
        .map(str::trim)
        .filter(|part| !part.is_empty() && matches!(classify(part), Label::Unknown))
}

/// An age in one of the release's own forms: whole years (`58`, 2020) or DICOM's
/// `058Y` (2017); `45.0`, `45y` or ` 45` are read with a row.
fn is_plain_age(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(s)
        || s.strip_suffix('Y')
            .is_some_and(|n| n.len() == 3 && digits(n))
}

/// Whether the release says nothing of the image's findings: an empty `Finding
/// Labels` (every finding unknown, not normal; its label columns are NULL).
pub fn is_unlabelled(image: &Image) -> bool {
    says_nothing(&image.finding_labels)
}

/// An empty `Finding Labels`, or one of separators only (`|`).
fn says_nothing(finding_labels: &str) -> bool {
    finding_labels.split('|').all(|part| part.trim().is_empty())
}

/// Whether the release states the image normal: no finding and no unknown label.
pub fn is_normal(image: &Image) -> bool {
    image.labels.is_empty()
        && !is_unlabelled(image)
        && unknown_labels(&image.finding_labels).next().is_none()
}

/// The image's findings, None when the release gives none (see [`is_unlabelled`]).
pub fn known_labels(image: &Image) -> Option<&[&'static str]> {
    (!is_unlabelled(image)).then_some(image.labels.as_slice())
}

/// Builds the `images` table.
pub fn images_batch(images: &[Image]) -> Result<RecordBatch> {
    let mut cols = vec![
        (
            "image_index",
            text(images.iter().map(|i| i.image_index.as_str())),
        ),
        (
            "patient_id",
            i32s(images.iter().map(|i| Some(i.patient_id))),
        ),
        ("follow_up", i32s(images.iter().map(|i| Some(i.follow_up)))),
        ("age", i16s(images.iter().map(|i| i.age))),
        ("sex", utf8(images.iter().map(|i| i.sex))),
        (
            "view_position",
            utf8(images.iter().map(|i| i.view_position)),
        ),
        ("orig_width", i32s(images.iter().map(|i| i.orig_width))),
        ("orig_height", i32s(images.iter().map(|i| i.orig_height))),
        (
            "pixel_spacing_x",
            f64s(images.iter().map(|i| i.pixel_spacing_x)),
        ),
        (
            "pixel_spacing_y",
            f64s(images.iter().map(|i| i.pixel_spacing_y)),
        ),
        (
            "finding_labels",
            text(images.iter().map(|i| i.finding_labels.as_str())),
        ),
        (
            "labels",
            optional_list_utf8(images.iter().map(known_labels)),
        ),
        (
            "n_labels",
            i8s(images
                .iter()
                .map(|i| known_labels(i).map(|l| l.len() as i8))),
        ),
        (
            "no_finding",
            bools(images.iter().map(|i| Some(is_normal(i)))),
        ),
    ];
    let names: Vec<String> = FINDINGS.iter().map(|f| column_name(f)).collect();
    for (f, name) in FINDINGS.iter().zip(&names) {
        cols.push((
            name,
            bools(
                images
                    .iter()
                    .map(|i| known_labels(i).map(|l| l.contains(f))),
            ),
        ));
    }
    cols.push(("split", utf8(images.iter().map(|i| i.split))));
    batch(cols)
}

/// Builds the `findings` table: one row per (image, finding).
pub fn findings_batch(images: &[Image]) -> Result<RecordBatch> {
    let rows: Vec<(&Image, &str)> = images
        .iter()
        .flat_map(|i| i.labels.iter().map(move |l| (i, *l)))
        .collect();
    batch(vec![
        (
            "image_index",
            text(rows.iter().map(|(i, _)| i.image_index.as_str())),
        ),
        (
            "patient_id",
            i32s(rows.iter().map(|(i, _)| Some(i.patient_id))),
        ),
        (
            "follow_up",
            i32s(rows.iter().map(|(i, _)| Some(i.follow_up))),
        ),
        ("label", text(rows.iter().map(|(_, l)| *l))),
    ])
}

/// The images in study order: by patient, follow-up, then image name (one sort
/// instead of a map of vectors).
pub fn in_study_order(images: &[Image]) -> Vec<&Image> {
    let mut order: Vec<&Image> = images.iter().collect();
    order.sort_unstable_by(|a, b| {
        (a.patient_id, a.follow_up, &a.image_index).cmp(&(
            b.patient_id,
            b.follow_up,
            &b.image_index,
        ))
    });
    order
}

/// Builds the `patients` table, noting patients whose sex differs between studies.
pub fn patients_batch(images: &[Image], source: &str, issues: &mut Issues) -> Result<RecordBatch> {
    let order = in_study_order(images);
    let by_patient: Vec<(i32, &[&Image])> = order
        .chunk_by(|a, b| a.patient_id == b.patient_id)
        .map(|c| (c[0].patient_id, c))
        .collect();
    let n = by_patient.len();
    let mut id = Vec::with_capacity(n);
    let mut sex = Vec::with_capacity(n);
    let mut n_images = Vec::with_capacity(n);
    let (mut first_fu, mut last_fu, mut first_age, mut last_age) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut labels_ever: Vec<Vec<&str>> = Vec::with_capacity(n);
    let mut split = Vec::with_capacity(n);
    for (pid, studies) in by_patient {
        let (first, last) = (studies[0], studies[studies.len() - 1]);
        for s in &studies[1..] {
            if s.sex.is_some() && first.sex.is_some() && s.sex != first.sex {
                issues.push(
                    source,
                    Some(s.line),
                    Some("Patient Gender"),
                    s.sex,
                    format!("patient {pid} has a different sex on another study; patients.sex uses the first study's"),
                );
            }
        }
        let mut ever: Vec<&str> = studies
            .iter()
            .flat_map(|s| s.labels.iter().copied())
            .collect();
        ever.sort_unstable();
        ever.dedup();
        let first_split = studies[0].split;
        let same_split = studies.iter().all(|s| s.split == first_split);
        id.push(pid);
        sex.push(first.sex);
        n_images.push(studies.len() as i32);
        first_fu.push(first.follow_up);
        last_fu.push(last.follow_up);
        first_age.push(first.age);
        last_age.push(last.age);
        labels_ever.push(ever);
        split.push(if same_split { first_split } else { None });
    }
    batch(vec![
        ("patient_id", i32s(id.into_iter().map(Some))),
        ("sex", utf8(sex)),
        ("n_images", i32s(n_images.into_iter().map(Some))),
        ("first_follow_up", i32s(first_fu.into_iter().map(Some))),
        ("last_follow_up", i32s(last_fu.into_iter().map(Some))),
        ("first_age", i16s(first_age)),
        ("last_age", i16s(last_age)),
        (
            "labels_ever",
            list_utf8(labels_ever.iter().map(Vec::as_slice)),
        ),
        ("split", utf8(split)),
    ])
}
