//! MIMIC-CXR-JPG 2.0.0 → `dataset_images`, `dataset_labels`.
//!
//! The files are recognised by their header (plain or gzip, any order):
//! * `mimic-cxr-2.0.0-metadata.csv` (`dicom_id`, `subject_id`, `study_id`, `ViewPosition`,
//!   `StudyDate`, ...): one image per row; required.
//! * `mimic-cxr-2.0.0-chexpert.csv` / `-negbio.csv` (`subject_id`, `study_id` and the 14
//!   CheXpert label columns): labels per STUDY, given to every image of the study, as
//!   sources `mimic_chexpert` / `mimic_negbio`. Both files have the same columns, so the
//!   file name tells them apart (it must contain `chexpert` or `negbio`).
//! * `mimic-cxr-2.0.0-split.csv` (`dicom_id`, `study_id`, `subject_id`, `split`): split.
//! * MIMIC-IV `patients.csv` (`subject_id`, `gender`, `anchor_age`, `anchor_year`):
//!   sex, and age = `anchor_age` + (year of `StudyDate` − `anchor_year`). The years of
//!   MIMIC-CXR dates are shifted like `anchor_year`, so the difference is real time.
//!   A missing or invalid `StudyDate` leaves the image without an order or an age,
//!   with a `data_issues` row at its line whatever other files are given.
//!
//! `patient_id` = `subject_id`, `study_id` = `study_id`, `image_id` = `dicom_id`, path
//! `files/p{first 2 digits of subject}/p{subject}/s{study}/{dicom_id}.jpg`.
//! `ViewPosition`: `PA`, `AP`; `LATERAL`, `LL`, `RL`, `XTABLE LATERAL` → LATERAL; the
//! axial, decubitus, oblique and swimmer's views (`AP AXIAL`, `AP LLD`, `PA RLD`, `LAO`,
//! `RAO`, `LPO`, `SWIMMERS`, ...) → OTHER; empty → NULL; anything else → NULL + issue.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::datasets::chexpert::LABEL_COLUMNS;
use crate::datasets::common::{
    Col, MAX_AGE, date_key, frontal_of, has_all, label_value, path_inside_root, require_all,
};
use crate::datasets::label_map::{LabelMap, Resolver};
use crate::datasets::{DatasetRows, ImageRow, LabelRow, Shared};
use crate::error::{Error, Result};
use crate::input::csv::{CsvTable, source_name, squash};
use crate::input::issues::Issues;

/// Dataset name.
pub const NAME: &str = "mimic";

const METADATA: [Col<'static>; 5] = [
    ("dicom_id", &["dicomid"]),
    ("subject_id", &["subjectid"]),
    ("study_id", &["studyid"]),
    ("ViewPosition", &["viewposition"]),
    ("StudyDate", &["studydate"]),
];
const SPLIT: [Col<'static>; 2] = [("dicom_id", &["dicomid"]), ("split", &["split"])];
const PATIENTS: [Col<'static>; 4] = [
    ("subject_id", &["subjectid"]),
    ("gender", &["gender"]),
    ("anchor_age", &["anchorage"]),
    ("anchor_year", &["anchoryear"]),
];

/// What a MIMIC file is, by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Metadata,
    Split,
    Labels,
    Patients,
}

fn kind_of(header: &[String]) -> Option<Kind> {
    if has_all(header, &["dicomid", "viewposition"]) {
        Some(Kind::Metadata)
    } else if has_all(header, &["dicomid", "split"]) {
        Some(Kind::Split)
    } else if has_all(header, &["subjectid", "gender"]) {
        Some(Kind::Patients)
    } else if has_all(header, &["studyid", "nofinding"])
        || has_all(header, &["studyid", "pleuraleffusion"])
    {
        Some(Kind::Labels)
    } else {
        None
    }
}

/// Reads the MIMIC-CXR-JPG files, given in any order.
pub fn read(paths: &[PathBuf], map: &LabelMap, issues: &mut Issues) -> Result<DatasetRows> {
    let mut metadata: Option<(CsvTable, Vec<usize>)> = None;
    let mut split: Option<(CsvTable, Vec<usize>)> = None;
    let mut patients: Option<(CsvTable, Vec<usize>)> = None;
    let mut labels: Vec<(&'static str, CsvTable, Vec<usize>)> = Vec::new();
    for p in paths {
        let t = CsvTable::read(p, issues)?;
        t.refuse_if_empty()?;
        let twice = |what: &str| {
            Error::input(
                p,
                format!("a second MIMIC {what} file; give each file once"),
            )
        };
        match kind_of(&t.header) {
            Some(Kind::Metadata) => {
                let pos = require_all(&t, "MIMIC-CXR-JPG metadata", &METADATA)?;
                if metadata.replace((t, pos)).is_some() {
                    return Err(twice("metadata"));
                }
            }
            Some(Kind::Split) => {
                let pos = require_all(&t, "MIMIC-CXR-JPG split", &SPLIT)?;
                if split.replace((t, pos)).is_some() {
                    return Err(twice("split"));
                }
            }
            Some(Kind::Patients) => {
                let pos = require_all(&t, "MIMIC-IV patients", &PATIENTS)?;
                if patients.replace((t, pos)).is_some() {
                    return Err(twice("patients"));
                }
            }
            Some(Kind::Labels) => {
                let squashed: Vec<String> = LABEL_COLUMNS.iter().map(|n| squash(n)).collect();
                let aliases: Vec<[&str; 1]> = squashed.iter().map(|s| [s.as_str()]).collect();
                let mut cols: Vec<Col> =
                    vec![("subject_id", &["subjectid"]), ("study_id", &["studyid"])];
                cols.extend(
                    LABEL_COLUMNS
                        .iter()
                        .zip(&aliases)
                        .map(|(n, a)| (*n, &a[..])),
                );
                let pos = require_all(&t, "MIMIC-CXR-JPG label", &cols)?;
                let name = t.source.to_ascii_lowercase();
                let source = if name.contains("negbio") {
                    "mimic_negbio"
                } else if name.contains("chexpert") {
                    "mimic_chexpert"
                } else {
                    return Err(Error::input(
                        p,
                        "a MIMIC-CXR-JPG label file, but its name says neither chexpert nor negbio \
                         (the two files have the same columns); keep the release's file names",
                    ));
                };
                if labels.iter().any(|(s, _, _)| *s == source) {
                    return Err(twice(source));
                }
                labels.push((source, t, pos));
            }
            None => {
                return Err(Error::input(
                    p,
                    format!(
                        "not a MIMIC-CXR-JPG file: its header fits none of metadata (dicom_id, \
                         subject_id, study_id, ViewPosition, StudyDate), split (dicom_id, split), \
                         chexpert/negbio labels (subject_id, study_id, No Finding, ...) or \
                         MIMIC-IV patients (subject_id, gender, anchor_age, anchor_year); the \
                         header has: {}",
                        t.header.join(", ")
                    ),
                ));
            }
        }
    }
    let Some((meta, mpos)) = metadata else {
        let first = paths.first().cloned().unwrap_or_default();
        return Err(Error::input(
            &first,
            "no MIMIC-CXR-JPG metadata file among the mimic files: missing a file with the \
             columns dicom_id, subject_id, study_id, ViewPosition, StudyDate \
             (mimic-cxr-2.0.0-metadata.csv)",
        ));
    };
    let mut rows = DatasetRows::default();
    let meta_rows = read_metadata(&meta, &mpos, &mut rows, issues)?;
    let index: HashMap<&str, usize> = rows
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| (&*img.image_id, i))
        .collect();
    if let Some((t, pos)) = &split {
        let splits = read_split(t, pos, &index, issues)?;
        for (i, s) in splits.into_iter().enumerate() {
            rows.images[i].split = s;
        }
    }
    if let Some((t, pos)) = &patients {
        let at = Metadata {
            table: &meta,
            date: mpos[4],
            rows: &meta_rows,
        };
        read_patients(t, pos, at, &mut rows, issues)?;
    }
    let mut resolver = Resolver::new(map, NAME);
    for (source, t, pos) in &labels {
        study_labels(t, pos, source, &mut resolver, &mut rows, issues)?;
    }
    if !labels.is_empty() {
        studies_without_labels(&rows, &meta.source, issues);
    }
    Ok(rows)
}

/// A study of the metadata that no label file labels (no row, or a row of empty
/// cells): its images are kept without labels, one `data_issues` row per study, as
/// NIH's empty `Finding Labels` is said.
fn studies_without_labels(rows: &DatasetRows, metadata: &str, issues: &mut Issues) {
    let labelled: std::collections::HashSet<&str> =
        rows.labels.iter().map(|l| &*l.image_id).collect();
    let mut studies: Vec<&str> = rows
        .images
        .iter()
        .filter(|i| !labelled.contains(&*i.image_id))
        .filter_map(|i| i.study_id.as_deref())
        .collect();
    studies.sort_unstable();
    studies.dedup();
    for study in studies {
        issues.push(
            metadata,
            None,
            Some("study_id"),
            Some(study),
            "no label file labels this study; its images kept without labels (every finding unknown, not normal)",
        );
    }
}

fn view_of(v: &str) -> Option<&'static str> {
    Some(match v {
        "PA" => "PA",
        "AP" => "AP",
        "LATERAL" | "LL" | "RL" | "XTABLE LATERAL" => "LATERAL",
        "AP AXIAL" | "PA AXIAL" | "AP LLD" | "AP RLD" | "PA LLD" | "PA RLD" | "LAO" | "RAO"
        | "LPO" | "RPO" | "SWIMMERS" | "LATERAL DECUBITUS" => "OTHER",
        _ => return None,
    })
}

/// A MIMIC integer id (`subject_id`, `study_id`), tolerating a `.0` suffix.
fn id_text(s: &str) -> Option<&str> {
    let s = s.strip_suffix(".0").unwrap_or(s);
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// Reads the metadata file into `rows.images`; returns each image's row of the file
/// (a refused row has no image, so it takes no part in what follows).
fn read_metadata(
    t: &CsvTable,
    pos: &[usize],
    rows: &mut DatasetRows,
    issues: &mut Issues,
) -> Result<Vec<usize>> {
    let src = source_name(&t.path);
    let v: Vec<Vec<Option<&str>>> = pos.iter().map(|&p| t.values(p)).collect::<Result<_>>()?;
    let [dicom, subject, study, view, date] = &v[..] else {
        unreachable!("METADATA has 5 columns")
    };
    let mut seen: HashMap<&str, u64> = HashMap::with_capacity(t.len());
    let mut kept = Vec::with_capacity(t.len());
    rows.images.reserve(t.len());
    for r in 0..t.len() {
        let line = t.lines[r];
        let push = |issues: &mut Issues, col: usize, v: Option<&str>, msg: &str| {
            issues.push(&src, Some(line), Some(t.name(pos[col])), v, msg);
        };
        let Some(id) = dicom[r] else {
            push(issues, 0, None, "dicom_id is empty; row refused");
            continue;
        };
        if let Some(first) = seen.get(id) {
            push(
                issues,
                0,
                Some(id),
                &format!("duplicate dicom_id (first on line {first}); row refused"),
            );
            continue;
        }
        seen.insert(id, line);
        let subject = match subject[r] {
            Some(s) => match id_text(s) {
                Some(s) => Some(s),
                None => {
                    push(
                        issues,
                        1,
                        Some(s),
                        "subject_id is not a number; patient_id and path set to NULL",
                    );
                    None
                }
            },
            None => {
                push(
                    issues,
                    1,
                    None,
                    "subject_id is empty; patient_id and path set to NULL",
                );
                None
            }
        };
        let study = match study[r] {
            Some(s) => match id_text(s) {
                Some(s) => Some(s),
                None => {
                    push(
                        issues,
                        2,
                        Some(s),
                        "study_id is not a number; study_id and path set to NULL",
                    );
                    None
                }
            },
            None => {
                push(
                    issues,
                    2,
                    None,
                    "study_id is empty; study_id and path set to NULL",
                );
                None
            }
        };
        let view = match view[r] {
            None => None,
            Some(v) => {
                let m = view_of(&v.trim().to_ascii_uppercase());
                if m.is_none() {
                    push(issues, 3, Some(v), "unknown ViewPosition; view set to NULL");
                }
                m
            }
        };
        // The subject and study are numbers; a dicom_id may hold `..` or `/`.
        let path = match (subject, study) {
            (Some(p), Some(s)) if p.len() >= 2 => path_inside_root(
                format!("files/p{}/p{p}/s{s}/{id}.jpg", &p[..2]).into(),
                issues,
                (&src, line, t.name(pos[0])),
            ),
            _ => None,
        };
        let study_order = date[r].and_then(date_key);
        if study_order.is_none() {
            // Said whatever other files are given: without a date, no order and no age.
            let msg = match date[r] {
                None => {
                    "no StudyDate: age NULL, and the study has no place in its patient's follow-up (left out of `followup` and `studies`)"
                }
                Some(_) => {
                    "StudyDate is not a YYYYMMDD date; age NULL, and the study has no place in its patient's follow-up (left out of `followup` and `studies`)"
                }
            };
            push(issues, 4, date[r], msg);
        }
        kept.push(r);
        rows.images.push(ImageRow {
            dataset: NAME,
            image_id: id.into(),
            patient_id: subject.map(str::to_string),
            study_id: study.map(str::to_string),
            study_order,
            view,
            frontal: frontal_of(view),
            sex: None,
            age: None,
            split: None,
            path,
        });
    }
    Ok(kept)
}

fn read_split(
    t: &CsvTable,
    pos: &[usize],
    index: &HashMap<&str, usize>,
    issues: &mut Issues,
) -> Result<Vec<Option<String>>> {
    let src = source_name(&t.path);
    let (dicom, split) = (t.values(pos[0])?, t.values(pos[1])?);
    let mut out: Vec<Option<String>> = vec![None; index.len()];
    let mut given = vec![false; index.len()];
    for r in 0..t.len() {
        let line = Some(t.lines[r]);
        let Some(id) = dicom[r] else {
            issues.push(
                &src,
                line,
                Some(t.name(pos[0])),
                None,
                "dicom_id is empty; row refused",
            );
            continue;
        };
        let Some(&i) = index.get(id) else {
            issues.push(
                &src,
                line,
                Some(t.name(pos[0])),
                Some(id),
                "dicom_id not in the metadata file; row refused",
            );
            continue;
        };
        if given[i] {
            issues.push(
                &src,
                line,
                Some(t.name(pos[0])),
                Some(id),
                "dicom_id given twice; later row refused",
            );
            continue;
        }
        given[i] = true;
        match split[r] {
            // `train`, `validate`, `test` in any case: one split each.
            Some(s) => out[i] = Some(s.trim().to_ascii_lowercase()),
            None => issues.push(
                &src,
                line,
                Some(t.name(pos[1])),
                None,
                "split is empty; set to NULL",
            ),
        }
    }
    let missing = given.iter().filter(|g| !**g).count();
    if missing > 0 {
        issues.push(
            &src,
            None,
            Some(t.name(pos[0])),
            None,
            format!("{missing} image(s) of the metadata file are not in the split file; split set to NULL"),
        );
    }
    Ok(out)
}

/// A patient's (sex, anchor_age, anchor_year), each None where unusable.
type Patient = (Option<&'static str>, Option<f32>, Option<i32>);

/// A study's label-file line and its (label column, value) pairs.
type StudyLabels = (u64, Vec<(u8, i8)>);

/// Where the images of `rows` were read: the metadata file, its `StudyDate` column
/// and each image's row of it.
#[derive(Clone, Copy)]
struct Metadata<'a> {
    table: &'a CsvTable,
    date: usize,
    rows: &'a [usize],
}

fn read_patients(
    t: &CsvTable,
    pos: &[usize],
    meta: Metadata,
    rows: &mut DatasetRows,
    issues: &mut Issues,
) -> Result<()> {
    let src = source_name(&t.path);
    let v: Vec<Vec<Option<&str>>> = pos.iter().map(|&p| t.values(p)).collect::<Result<_>>()?;
    let [subject, gender, anchor_age, anchor_year] = &v[..] else {
        unreachable!("PATIENTS has 4 columns")
    };
    // subject → (sex, anchor_age, anchor_year), each None where unusable.
    let mut by_subject: HashMap<&str, Patient> = HashMap::with_capacity(t.len());
    for r in 0..t.len() {
        let line = Some(t.lines[r]);
        let push = |issues: &mut Issues, col: usize, v: Option<&str>, msg: &str| {
            issues.push(&src, line, Some(t.name(pos[col])), v, msg);
        };
        let Some(s) = subject[r].and_then(id_text) else {
            push(
                issues,
                0,
                subject[r],
                "subject_id is empty or not a number; row refused",
            );
            continue;
        };
        if by_subject.contains_key(s) {
            push(
                issues,
                0,
                Some(s),
                "subject_id given twice; later row refused",
            );
            continue;
        }
        let sex = gender[r].and_then(crate::datasets::common::parse_sex);
        if sex.is_none() {
            push(issues, 1, gender[r], crate::input::issues::SEX_NOT_READ);
        }
        let age = anchor_age[r].and_then(|a| {
            let x = a.parse::<f32>().ok().filter(|x| x.is_finite() && *x >= 0.0);
            if x.is_none() {
                push(
                    issues,
                    2,
                    Some(a),
                    "anchor_age is not an age; age set to NULL",
                );
            }
            x
        });
        let year = anchor_year[r].and_then(|y| {
            let x = y.strip_suffix(".0").unwrap_or(y).parse::<i32>().ok();
            if x.is_none() {
                push(
                    issues,
                    3,
                    Some(y),
                    "anchor_year is not a year; age set to NULL",
                );
            }
            x
        });
        by_subject.insert(s, (sex, age, year));
    }
    let msrc = source_name(&meta.table.path);
    let dates = meta.table.values(meta.date)?;
    let mut unknown: HashSet<String> = HashSet::new();
    for (img, &r) in rows.images.iter_mut().zip(meta.rows) {
        let Some(subj) = img.patient_id.as_deref() else {
            continue;
        };
        let Some(&(sex, anchor_age, anchor_year)) = by_subject.get(subj) else {
            if unknown.insert(subj.to_string()) {
                issues.push(
                    &src,
                    None,
                    Some(t.name(pos[0])),
                    Some(subj),
                    "subject of the metadata file not in the patients file; sex and age set to NULL (reported once per subject)",
                );
            }
            continue;
        };
        img.sex = sex;
        // The image's own date, as read with its row (a missing or invalid one is
        // said there).
        let Some(order) = img.study_order else {
            continue;
        };
        let (year, line, date) = ((order / 10_000) as i32, meta.table.lines[r], dates[r]);
        if let (Some(a), Some(y)) = (anchor_age, anchor_year) {
            // In i64: an anchor_year near i32's bounds must not overflow.
            let age = a + (i64::from(year) - i64::from(y)) as f32;
            if (0.0..=MAX_AGE).contains(&age) {
                img.age = Some(age);
            } else {
                issues.push(
                    &msrc,
                    Some(line),
                    Some(meta.table.name(meta.date)),
                    date,
                    format!("age {age} from anchor_age {a} and anchor_year {y} is negative or over 120; set to NULL"),
                );
            }
        }
    }
    Ok(())
}

fn study_labels(
    t: &CsvTable,
    pos: &[usize],
    source: &str,
    resolver: &mut Resolver,
    rows: &mut DatasetRows,
    issues: &mut Issues,
) -> Result<()> {
    let src = source_name(&t.path);
    let study = t.values(pos[1])?;
    let cols: Vec<Vec<Option<&str>>> = pos[2..]
        .iter()
        .map(|&p| t.values(p))
        .collect::<Result<_>>()?;
    // By the labeler's name of the column each header matched, whatever its case.
    let names: Vec<&str> = LABEL_COLUMNS.to_vec();
    let findings: Vec<Option<&'static str>> = names
        .iter()
        .zip(&pos[2..])
        .map(|(n, &p)| resolver.finding(n, (&src, Some(1), t.name(p)), issues))
        .collect::<Result<_>>()?;
    let raw_names: Vec<Shared> = names.iter().map(|n| Shared::from(*n)).collect();
    let source = Shared::from(source);
    // study → (line, [(label column, value)])
    let mut by_study: HashMap<&str, StudyLabels> = HashMap::with_capacity(t.len());
    for r in 0..t.len() {
        let line = t.lines[r];
        let Some(s) = study[r].and_then(id_text) else {
            issues.push(
                &src,
                Some(line),
                Some(t.name(pos[1])),
                study[r],
                "study_id is empty or not a number; row refused",
            );
            continue;
        };
        if let Some((first, _)) = by_study.get(s) {
            let msg = format!("duplicate study_id (first on line {first}); row refused");
            issues.push(&src, Some(line), Some(t.name(pos[1])), Some(s), msg);
            continue;
        }
        let mut vals = Vec::new();
        for (k, col) in cols.iter().enumerate() {
            let Some(v) = col[r] else { continue };
            match label_value(v) {
                Some(x) => vals.push((k as u8, x)),
                None => issues.push(
                    &src,
                    Some(line),
                    Some(names[k]),
                    Some(v),
                    "label value is not 1.0, 0.0 or -1.0; label refused",
                ),
            }
        }
        by_study.insert(s, (line, vals));
    }
    let mut used: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for img in &rows.images {
        let Some(s) = img.study_id.as_deref() else {
            continue;
        };
        let Some((k, (_, vals))) = by_study.get_key_value(s) else {
            continue;
        };
        used.insert(*k);
        let image_id: Shared = img.image_id.clone();
        for &(c, value) in vals {
            out.push(LabelRow {
                dataset: NAME,
                image_id: image_id.clone(),
                source: source.clone(),
                raw_label: raw_names[c as usize].clone(),
                finding: findings[c as usize],
                value,
            });
        }
    }
    let mut orphans: Vec<(u64, &str)> = by_study
        .iter()
        .filter(|(s, _)| !used.contains(*s))
        .map(|(s, (l, _))| (*l, *s))
        .collect();
    orphans.sort_unstable();
    for (line, s) in orphans {
        issues.push(
            &src,
            Some(line),
            Some(t.name(pos[1])),
            Some(s),
            "study has no image in the metadata file; its labels are dropped",
        );
    }
    rows.labels.extend(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support::*;

    // Fixtures in the published column layouts of MIMIC-CXR-JPG 2.0.0 and MIMIC-IV;
    // every value is invented.
    const META: &str = "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning
aaa-1,10000001,50000001,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect
aaa-2,10000001,50000001,CHEST (PA AND LAT),LATERAL,3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect
bbb-1,10000001,50000002,CHEST (PORTABLE AP),AP,2544,3056,21830101,101010,CHEST (PORTABLE AP),antero-posterior,
ccc-1,12000002,50000003,CHEST (PA AND LAT),LL,3056,2544,21500101,101010,CHEST (PA AND LAT),left lateral,Erect
ccc-2,12000002,50000003,CHEST (PA AND LAT),,3056,2544,21500101,101010,CHEST (PA AND LAT),,
ddd-1,13000003,50000004,CHEST,AP AXIAL,3056,2544,21600101,101010,CHEST,,
ddd-2,13000003,50000004,CHEST,UPSIDE DOWN,3056,2544,21600101,101010,CHEST,,
aaa-1,10000001,50000001,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect
";
    const LABELS_HEADER: &str = "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices";
    const SPLIT_CSV: &str = "dicom_id,study_id,subject_id,split
aaa-1,50000001,10000001,train
aaa-2,50000001,10000001,train
bbb-1,50000002,10000001,validate
ccc-1,50000003,12000002,test
zzz-9,50000009,19000009,train
";
    const PATIENTS_CSV: &str = "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod
10000001,F,52,2180,2014 - 2016,
12000002,M,91,2140,2008 - 2010,
13000003,X,40,2160,2017 - 2019,
";

    fn labels_csv() -> String {
        format!(
            "{LABELS_HEADER}
10000001,50000001,,1.0,,,,,,,,-1.0,,0.0,,
10000001,50000002,,,,,,,,,1.0,,,,,
12000002,50000003,1.0,,,,,,,,,,,,,maybe
19000009,50000009,1.0,,,,,,,,,,,,,
"
        )
    }

    fn files(dir: &std::path::Path) -> Vec<PathBuf> {
        vec![
            write(
                dir,
                "mimic-cxr-2.0.0-negbio.csv",
                &labels_csv().replace(",1.0,,,,,,,,-1.0", ",0.0,,,,,,,,1.0"),
            ),
            write_gz(dir, "mimic-cxr-2.0.0-metadata.csv.gz", META),
            write(dir, "patients.csv", PATIENTS_CSV),
            write_gz(dir, "mimic-cxr-2.0.0-chexpert.csv.gz", &labels_csv()),
            write(dir, "mimic-cxr-2.0.0-split.csv", SPLIT_CSV),
        ]
    }

    /// A dicom_id with `..` would make a path out of the release's folder: the path
    /// is NULL, with a `data_issues` row at the id's line and column.
    #[test]
    fn a_path_out_of_the_release_is_noted_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let meta = "dicom_id,subject_id,study_id,ViewPosition,StudyDate\n\
                    aaa-1,10000001,50000001,PA,21800506\n\
                    ../../../etc/x,10000001,50000001,PA,21800506\n";
        let files = [write_gz(
            dir.path(),
            "mimic-cxr-2.0.0-metadata.csv.gz",
            meta,
        )];
        let mut issues = Issues::default();
        let rows = read(&files, &LabelMap::default(), &mut issues).unwrap();
        let paths: Vec<_> = rows.images.iter().map(|i| i.path.as_deref()).collect();
        assert_eq!(
            paths,
            [Some("files/p10/p10000001/s50000001/aaa-1.jpg"), None]
        );
        let noted: Vec<_> = issues
            .rows()
            .iter()
            .filter(|i| i.issue == crate::datasets::common::PATH_LEAVES_ROOT)
            .map(|i| (i.line, i.field.as_deref(), i.value.as_deref()))
            .collect();
        assert_eq!(
            noted,
            [(
                Some(3),
                Some("dicom_id"),
                Some("files/p10/p10000001/s50000001/../../../etc/x.jpg")
            )]
        );
    }

    /// (line, field, value) of every issue.
    fn issue_rows(issues: &Issues) -> Vec<(Option<i64>, Option<&str>, Option<&str>)> {
        issues
            .rows()
            .iter()
            .map(|i| (i.line, i.field.as_deref(), i.value.as_deref()))
            .collect()
    }

    /// A date that is no day of the calendar, or no date at all, leaves the study
    /// without an order with a `data_issues` row at its line, whether or not a
    /// patients file is given (it was said only for a subject the patients file
    /// listed), and only once when one is.
    #[test]
    fn an_invalid_date_is_said_at_its_line_whatever_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let meta = write(
            dir.path(),
            "mimic-cxr-2.0.0-metadata.csv",
            "dicom_id,subject_id,study_id,ViewPosition,StudyDate\n\
             d1,10000001,50000001,PA,21800506\n\
             d2,10000001,50000002,PA,21800230\n\
             d3,10000002,50000003,PA,garbage\n\
             d4,10000002,50000004,PA,\n",
        );
        let patients = write(
            dir.path(),
            "patients.csv",
            "subject_id,gender,anchor_age,anchor_year\n\
             10000001,F,50,2180\n\
             10000002,M,60,2170\n",
        );
        let want = [
            (Some(3), Some("StudyDate"), Some("21800230")),
            (Some(4), Some("StudyDate"), Some("garbage")),
            (Some(5), Some("StudyDate"), None),
        ];
        for files in [vec![meta.clone()], vec![meta.clone(), patients]] {
            let mut issues = Issues::default();
            let rows = read(&files, &LabelMap::default(), &mut issues).unwrap();
            let orders: Vec<_> = rows.images.iter().map(|i| i.study_order).collect();
            assert_eq!(orders, [Some(21800506), None, None, None]);
            assert_eq!(issue_rows(&issues), want, "{files:?}");
            assert!(
                issues.rows()[..2]
                    .iter()
                    .all(|i| i.issue.contains("not a YYYYMMDD"))
            );
            // With the patients file, d1 is 50 in 2180; the others have no year.
            let ages: Vec<_> = rows.images.iter().map(|i| i.age).collect();
            let d1 = if files.len() == 2 { Some(50.0) } else { None };
            assert_eq!(ages, [d1, None, None, None]);
        }
    }

    /// A refused duplicate row of the metadata takes no part in the kept row's age:
    /// d1 is 50 at its own date (the duplicate's, ten years later, gave 60), and d2's
    /// own date gives 170, refused at d2's first line (the duplicate's gave 50).
    #[test]
    fn a_refused_duplicate_row_gives_no_age() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            write(
                dir.path(),
                "mimic-cxr-2.0.0-metadata.csv",
                "dicom_id,subject_id,study_id,ViewPosition,StudyDate\n\
                 d1,10000001,50000001,PA,21800506\n\
                 d1,10000001,50000001,PA,21900506\n\
                 d2,10000002,50000002,PA,23000101\n\
                 d2,10000002,50000002,PA,21800101\n",
            ),
            write(
                dir.path(),
                "patients.csv",
                "subject_id,gender,anchor_age,anchor_year\n\
                 10000001,F,50,2180\n\
                 10000002,M,50,2180\n",
            ),
        ];
        let mut issues = Issues::default();
        let rows = read(&files, &LabelMap::default(), &mut issues).unwrap();
        let got: Vec<_> = rows
            .images
            .iter()
            .map(|i| (&*i.image_id, i.study_order, i.age))
            .collect();
        assert_eq!(
            got,
            [
                ("d1", Some(21800506), Some(50.0)),
                ("d2", Some(23000101), None)
            ]
        );
        assert_eq!(
            issue_rows(&issues),
            [
                (Some(3), Some("dicom_id"), Some("d1")),
                (Some(5), Some("dicom_id"), Some("d2")),
                (Some(4), Some("StudyDate"), Some("23000101")),
            ]
        );
        assert!(issues.rows()[2].issue.starts_with("age 170 "));
    }

    #[test]
    fn reads_fixtures_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut issues = Issues::default();
        let rows = read(&files(dir.path()), &LabelMap::default(), &mut issues).unwrap();
        assert_eq!(rows.images.len(), 7);
        let img = |id: &str| rows.images.iter().find(|i| &*i.image_id == id).unwrap();
        let a = img("aaa-1");
        assert_eq!(
            a.path.as_deref(),
            Some("files/p10/p10000001/s50000001/aaa-1.jpg")
        );
        assert_eq!(
            (a.patient_id.as_deref(), a.study_id.as_deref()),
            (Some("10000001"), Some("50000001"))
        );
        assert_eq!(
            (a.view, a.frontal, a.sex, a.age, a.split.as_deref()),
            (Some("PA"), Some(true), Some("F"), Some(52.0), Some("train"))
        );
        assert_eq!(
            (img("aaa-2").view, img("aaa-2").frontal),
            (Some("LATERAL"), Some(false))
        );
        // Three shifted years later: anchor_age + 3.
        assert_eq!(
            (img("bbb-1").age, img("bbb-1").split.as_deref()),
            (Some(55.0), Some("validate"))
        );
        assert_eq!(
            (img("ccc-1").view, img("ccc-1").sex, img("ccc-1").age),
            (Some("LATERAL"), Some("M"), Some(101.0))
        );
        assert_eq!(
            (
                img("ccc-2").view,
                img("ccc-2").frontal,
                img("ccc-2").split.as_deref()
            ),
            (None, None, None)
        );
        assert_eq!(
            (img("ddd-1").view, img("ddd-1").frontal, img("ddd-1").sex),
            (Some("OTHER"), None, None)
        );
        assert_eq!(img("ddd-2").view, None);

        let of = |id: &str, src: &str| -> Vec<(String, Option<String>, i8)> {
            rows.labels
                .iter()
                .filter(|l| &*l.image_id == id && &*l.source == src)
                .map(|l| {
                    (
                        l.raw_label.to_string(),
                        l.finding.map(str::to_string),
                        l.value,
                    )
                })
                .collect()
        };
        let want_a = vec![
            (
                "Cardiomegaly".to_string(),
                Some("Cardiomegaly".to_string()),
                1,
            ),
            ("Pneumonia".to_string(), Some("Pneumonia".to_string()), 0),
            (
                "Pleural Effusion".to_string(),
                Some("Effusion".to_string()),
                -1,
            ),
        ];
        // Study labels reach every image of the study.
        assert_eq!(of("aaa-1", "mimic_chexpert"), want_a);
        assert_eq!(of("aaa-2", "mimic_chexpert"), want_a);
        assert_eq!(
            of("aaa-1", "mimic_negbio")[0],
            (
                "Cardiomegaly".to_string(),
                Some("Cardiomegaly".to_string()),
                0
            )
        );
        assert_eq!(
            of("bbb-1", "mimic_chexpert"),
            vec![("No Finding".to_string(), None, 1)]
        );
        assert_eq!(
            of("ccc-2", "mimic_chexpert"),
            vec![(
                "Atelectasis".to_string(),
                Some("Atelectasis".to_string()),
                1
            )]
        );
        assert!(of("ddd-1", "mimic_chexpert").is_empty());
        assert!(rows.labels.iter().all(|l| l.dataset == "mimic"));

        let got = issue_keys(&issues);
        for (l, f, v) in [
            (8, "ViewPosition", "UPSIDE DOWN"),
            (9, "dicom_id", "aaa-1"),
            (6, "split", "zzz-9"),
            (4, "gender", "X"),
            (4, "Support Devices", "maybe"),
            (5, "study_id", "50000009"),
        ] {
            let f = if f == "split" { "dicom_id" } else { f };
            assert!(has(&got, l, f, v), "missing {l} {f} {v} in {got:?}");
        }
        // + the 3 images missing from the split file (one summary row).
        assert!(
            issues
                .rows()
                .iter()
                .any(|i| i.issue.starts_with("3 image(s)"))
        );
        // Study 50000004 (ddd-1, ddd-2) is in neither label file: its images have no
        // label, said once.
        assert!(
            issues
                .rows()
                .iter()
                .any(|i| i.field.as_deref() == Some("study_id")
                    && i.value.as_deref() == Some("50000004")
                    && i.issue.starts_with("no label file labels this study"))
        );
        // chexpert and negbio each: bad cell + orphan study = 2; metadata: 2; split: 2;
        // patients: 1; the unlabelled study: 1.
        assert_eq!(issues.len(), 2 + 2 + 2 + 2 + 1 + 1, "{got:?}");
    }

    #[test]
    fn metadata_alone_is_enough() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "meta.csv", META);
        let rows = read(&[p], &LabelMap::default(), &mut Issues::default()).unwrap();
        assert_eq!(rows.images.len(), 7);
        assert!(rows.labels.is_empty());
        assert!(
            rows.images
                .iter()
                .all(|i| i.sex.is_none() && i.age.is_none())
        );
    }

    #[test]
    fn wrong_or_missing_files_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let map = LabelMap::default();
        // A CheXpert file given as mimic.
        let chex = write(
            dir.path(),
            "train.csv",
            "Path,Sex,Age,Frontal/Lateral,AP/PA\na,Male,1,Frontal,AP\n",
        );
        let e = read(&[chex], &map, &mut Issues::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("train.csv")
                && e.to_string().contains("not a MIMIC-CXR-JPG file"),
            "{e}"
        );
        // Labels only: no metadata.
        let l = write(dir.path(), "mimic-cxr-2.0.0-chexpert.csv", &labels_csv());
        let e = read(&[l], &map, &mut Issues::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("no MIMIC-CXR-JPG metadata"), "{e}");
        // A label file whose name does not say which labeler.
        let m = write(dir.path(), "meta.csv", META);
        let l = write(dir.path(), "labels.csv", &labels_csv());
        let e = read(&[m.clone(), l], &map, &mut Issues::default()).unwrap_err();
        assert!(
            e.to_string().contains("labels.csv") && e.to_string().contains("negbio"),
            "{e}"
        );
        // A metadata file lacking StudyDate.
        let bad = write(
            dir.path(),
            "bad-metadata.csv",
            "dicom_id,subject_id,study_id,ViewPosition\na,1,2,PA\n",
        );
        let e = read(&[bad], &map, &mut Issues::default()).unwrap_err();
        assert!(
            e.to_string().contains("bad-metadata.csv") && e.to_string().contains("'StudyDate'"),
            "{e}"
        );
        // The same file twice.
        let e = read(&[m.clone(), m], &map, &mut Issues::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
