//! The label map: each dataset's raw label → a finding of [`XR_FINDINGS`].
//!
//! One CSV file, `dataset,raw_label,finding` (`label_map.csv` beside this module,
//! embedded as the default; a user's file replaces it whole). An empty finding means
//! "kept, not mapped". Lines starting with `#` are comments. Raw labels match in any
//! case, their spaces trimmed and runs of spaces read as one (`no  finding` is VinDr's
//! `No finding`): a release's spelling of a label varies between its versions and
//! files, and two labels that differ only so are one label.

use polars::prelude::PlHashMap;
use std::path::Path;

use crate::datasets::XR_FINDINGS;
use crate::error::{Error, Result};
use crate::input::csv::split_record;
use crate::input::issues::Issues;

/// The shipped map.
pub const DEFAULT_MAP: &str = include_str!("label_map.csv");

/// What the map says about one raw label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The label maps to this finding.
    Mapped(&'static str),
    /// The label is in the map with an empty finding: kept, not mapped.
    Unmapped,
    /// The label is in no row of the map.
    Unknown,
}

#[cfg(test)]
impl Lookup {
    /// The finding, if mapped.
    pub fn finding(self) -> Option<&'static str> {
        match self {
            Lookup::Mapped(f) => Some(f),
            _ => None,
        }
    }
}

/// The raw label → finding map of every dataset.
#[derive(Debug, Clone)]
pub struct LabelMap {
    /// dataset → normalised raw label → finding (None = kept, not mapped).
    rows: PlHashMap<String, PlHashMap<String, Option<&'static str>>>,
}

impl Default for LabelMap {
    /// The shipped map (`src/datasets/label_map.csv`).
    fn default() -> Self {
        Self::parse(DEFAULT_MAP, Path::new("label_map.csv"))
            .expect("the shipped label map is valid (checked by its unit test)")
    }
}

/// Whether `raw` is the label `label` as the map matches labels (PadChest's `Normal`
/// is its `normal`, VinDr's `no finding` its `No finding`), without allocating: it
/// is asked once per label row.
pub fn same_label(raw: &str, label: &str) -> bool {
    normal_chars(raw).eq(normal_chars(label))
}

/// The raw label as the map's keys spell it.
pub fn normalised(raw: &str) -> String {
    normal_chars(raw).collect()
}

/// The characters of a label as the map compares them: lower-cased, words joined by
/// one space.
fn normal_chars(raw: &str) -> impl Iterator<Item = char> + '_ {
    raw.split_whitespace()
        .enumerate()
        .flat_map(|(i, word)| (i > 0).then_some(' ').into_iter().chain(word.chars()))
        .flat_map(char::to_lowercase)
}

impl LabelMap {
    /// Reads a user's map file. Errors name the file and the line: a wrong header, a
    /// line without three fields, a finding not in the vocabulary, a label given twice
    /// for one dataset.
    pub fn from_file(path: &Path) -> Result<LabelMap> {
        let bytes = crate::input::csv::read_bytes(path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::input(path, "the label map is not UTF-8 text"))?;
        Self::parse_checked(text, path, Some(&LabelMap::default()))
    }

    /// Parses map text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<LabelMap> {
        Self::parse_checked(text, path, None)
    }

    /// Parses map text; a user's map (`shipped` given) may not change an `nih` row:
    /// NIH's labels are read by name, not through the map, so the change would do
    /// nothing.
    fn parse_checked(text: &str, path: &Path, shipped: Option<&LabelMap>) -> Result<LabelMap> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rows: PlHashMap<String, PlHashMap<String, Option<&'static str>>> =
            PlHashMap::default();
        let mut header_seen = false;
        // Lines end in LF, CRLF or a lone CR (as the CSV readers read them).
        let text = text.replace("\r\n", "\n");
        for (i, l) in text.split(['\n', '\r']).enumerate() {
            let line = i as u64 + 1;
            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                continue;
            }
            let fields: Vec<String> = split_record(l)
                .into_iter()
                .map(|f| f.trim().to_string())
                .collect();
            if !header_seen {
                let h: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
                if h != ["dataset", "raw_label", "finding"] {
                    return Err(Error::input_at(
                        path,
                        line,
                        None,
                        format!(
                            "label map header must be 'dataset,raw_label,finding', found '{l}'"
                        ),
                    ));
                }
                header_seen = true;
                continue;
            }
            if fields.len() != 3 {
                return Err(Error::input_at(
                    path,
                    line,
                    None,
                    format!(
                        "expected 3 fields (dataset,raw_label,finding), found {}",
                        fields.len()
                    ),
                ));
            }
            let (dataset, raw, finding) = (&fields[0], &fields[1], &fields[2]);
            if dataset.is_empty() || raw.is_empty() {
                return Err(Error::input_at(
                    path,
                    line,
                    None,
                    "dataset and raw_label must not be empty",
                ));
            }
            let finding = if finding.is_empty() {
                None
            } else {
                match XR_FINDINGS.iter().find(|f| **f == finding.as_str()) {
                    Some(f) => Some(*f),
                    None => {
                        return Err(Error::input_at(
                            path,
                            line,
                            Some("finding"),
                            format!(
                                "unknown finding '{finding}'; the findings are: {}",
                                XR_FINDINGS.join(", ")
                            ),
                        ));
                    }
                }
            };
            let dataset = dataset.to_ascii_lowercase();
            // A misspelt dataset would map nothing, and say nothing.
            if crate::datasets::dataset(&dataset).is_none() {
                return Err(Error::input_at(
                    path,
                    line,
                    Some("dataset"),
                    format!(
                        "unknown dataset '{dataset}'; the datasets are: {}",
                        crate::datasets::ALL.join(", ")
                    ),
                ));
            }
            if let Some(shipped) = shipped.filter(|_| dataset == "nih") {
                let same = match shipped.lookup("nih", raw) {
                    Lookup::Mapped(f) => finding == Some(f),
                    Lookup::Unmapped => finding.is_none(),
                    Lookup::Unknown => false,
                };
                if !same {
                    return Err(Error::input_at(
                        path,
                        line,
                        Some("dataset"),
                        "NIH's labels are its own 14 findings, read by name, not through the label map: an nih row other than the shipped map's would change nothing; remove it",
                    ));
                }
            }
            let k = normalised(raw);
            let per = rows.entry(dataset.clone()).or_default();
            if let Some(prev) = per.insert(k, finding)
                && prev != finding
            {
                return Err(Error::input_at(
                    path,
                    line,
                    Some("raw_label"),
                    format!("'{raw}' of {dataset} is mapped twice, to different findings"),
                ));
            }
        }
        if !header_seen {
            return Err(Error::input(
                path,
                "empty label map: no 'dataset,raw_label,finding' header",
            ));
        }
        Ok(LabelMap { rows })
    }

    /// What the map says about `raw` of `dataset`.
    pub fn lookup(&self, dataset: &str, raw: &str) -> Lookup {
        let Some(per) = self.rows.get(dataset) else {
            return Lookup::Unknown;
        };
        let hit = per.get(normalised(raw).as_str());
        match hit {
            Some(Some(f)) => Lookup::Mapped(f),
            Some(None) => Lookup::Unmapped,
            None => Lookup::Unknown,
        }
    }

    /// Number of rows (labels) for `dataset`.
    #[cfg(test)]
    fn len_of(&self, dataset: &str) -> usize {
        self.rows.get(dataset).map_or(0, PlHashMap::len)
    }
}

/// The most distinct label spellings one dataset's files may give (a resolver
/// remembers each, and reports each unknown one): PadChest has 193, OpenI's MeSH
/// headings a few hundred.
pub const MAX_DISTINCT_LABELS: usize = 10_000;

/// Resolves raw labels while a dataset is read, for every reader: the finding of
/// each label, and one `data_issues` row per distinct label that is in no row of the
/// map (at the place it was first seen). Answers are remembered: a reader asks about
/// the same few labels a million times.
pub struct Resolver<'a> {
    map: &'a LabelMap,
    dataset: &'static str,
    known: PlHashMap<String, Option<&'static str>>,
    /// Unknown labels already reported, as the map's keys spell them.
    reported: std::collections::HashSet<String>,
}

impl<'a> Resolver<'a> {
    /// A resolver for `dataset`.
    pub fn new(map: &'a LabelMap, dataset: &'static str) -> Self {
        Resolver {
            map,
            dataset,
            known: PlHashMap::default(),
            reported: Default::default(),
        }
    }

    /// The finding of `raw`; an unknown label is reported the first time it is seen,
    /// at `(file, line, field)`. More than [`MAX_DISTINCT_LABELS`] spellings is an
    /// error at the one past it (`file` is the input's name as `data_issues` gives
    /// it).
    pub fn finding(
        &mut self,
        raw: &str,
        (file, line, field): (&str, Option<u64>, &str),
        issues: &mut Issues,
    ) -> Result<Option<&'static str>> {
        if let Some(f) = self.known.get(raw) {
            return Ok(*f);
        }
        if self.known.len() >= MAX_DISTINCT_LABELS {
            let message = format!(
                "more than {MAX_DISTINCT_LABELS} distinct labels of {}: not a label column cxr reads (the releases have a few hundred)",
                self.dataset
            );
            return Err(match line {
                Some(line) => Error::input_at(Path::new(file), line, Some(field), message),
                None => Error::input(Path::new(file), format!("{field}: {message}")),
            });
        }
        let f = match self.map.lookup(self.dataset, raw) {
            Lookup::Mapped(f) => Some(f),
            Lookup::Unmapped => None,
            Lookup::Unknown => {
                if self.reported.insert(normalised(raw)) {
                    issues.push(
                        file,
                        line,
                        Some(field),
                        Some(raw.trim()),
                        format!(
                            "{} label not in the label map; kept with a NULL finding (reported once per label)",
                            self.dataset
                        ),
                    );
                }
                None
            }
        };
        self.known.insert(raw.to_string(), f);
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_parses_and_maps_the_reference_labels() {
        let m = LabelMap::default();
        let cases = [
            (
                "nih",
                "Pleural_Thickening",
                Lookup::Mapped("Pleural_Thickening"),
            ),
            ("nih", "No Finding", Lookup::Unmapped),
            ("nih", "Airspace opacity", Lookup::Mapped("Lung_Opacity")),
            ("chexpert", "Pleural Effusion", Lookup::Mapped("Effusion")),
            ("chexpert", "Lung Lesion", Lookup::Mapped("Lung_Lesion")),
            ("chexpert", "Lung Opacity", Lookup::Mapped("Lung_Opacity")),
            (
                "chexpert",
                "Enlarged Cardiomediastinum",
                Lookup::Mapped("Enlarged_Cardiomediastinum"),
            ),
            ("chexpert", "Support Devices", Lookup::Unmapped),
            ("openi", "Fractures, Bone", Lookup::Mapped("Fracture")),
            ("openi", "normal", Lookup::Unmapped),
            ("vindr", "Pleural effusion", Lookup::Mapped("Effusion")),
            ("mimic", "Pleural Effusion", Lookup::Mapped("Effusion")),
            ("padchest", "pleural effusion", Lookup::Mapped("Effusion")),
            (
                "padchest",
                "  Pleural Effusion ",
                Lookup::Mapped("Effusion"),
            ),
            ("padchest", "infiltrates", Lookup::Mapped("Infiltration")),
            ("padchest", "pulmonary mass", Lookup::Mapped("Mass")),
            ("padchest", "nodule", Lookup::Mapped("Nodule")),
            ("padchest", "hiatal hernia", Lookup::Mapped("Hernia")),
            ("padchest", "rib fracture", Lookup::Mapped("Fracture")),
            ("padchest", "vertebral fracture", Lookup::Mapped("Fracture")),
            ("padchest", "consolidation", Lookup::Mapped("Consolidation")),
            (
                "padchest",
                "pleural thickening",
                Lookup::Mapped("Pleural_Thickening"),
            ),
            // Pericardial, not pleural, effusion: kept, not mapped (txrv maps it).
            ("padchest", "pericardial effusion", Lookup::Unmapped),
            ("openi", "Pericardial Effusion", Lookup::Unmapped),
            ("padchest", "normal", Lookup::Unmapped),
            ("padchest", "COPD signs", Lookup::Unmapped),
            ("padchest", "copd SIGNS", Lookup::Unmapped),
            ("padchest", "no such label", Lookup::Unknown),
            ("vindr", "Pleural effusion", Lookup::Mapped("Effusion")),
            ("vindr", "No finding", Lookup::Unmapped),
            ("rsna", "Pneumonia", Lookup::Mapped("Pneumonia")),
            ("rsna", "Target", Lookup::Mapped("Pneumonia")),
            ("siim", "Pneumothorax", Lookup::Mapped("Pneumothorax")),
            ("openi", "Cardiomegaly", Lookup::Mapped("Cardiomegaly")),
            ("openi", "Pleural Effusion", Lookup::Mapped("Effusion")),
            ("openi", "Opacity", Lookup::Mapped("Lung_Opacity")),
            ("openi", "Lung", Lookup::Unmapped),
            ("openi", "Hernia, Hiatal", Lookup::Mapped("Hernia")),
            // Any case, spaces trimmed and runs of them one, in every dataset.
            ("chexpert", "pleural effusion", Lookup::Mapped("Effusion")),
            ("vindr", "no  finding", Lookup::Unmapped),
            ("vindr", "PLEURAL\tEFFUSION ", Lookup::Mapped("Effusion")),
            ("nih", "no finding", Lookup::Unmapped),
            ("chexpert", "pleuraleffusion", Lookup::Unknown),
            ("nosuch", "Cardiomegaly", Lookup::Unknown),
        ];
        for (ds, raw, want) in cases {
            assert_eq!(m.lookup(ds, raw), want, "{ds} {raw}");
        }
        // 193 PadChest labels (python: distinct stripped non-empty items of Labels in
        // the 160K file, see padchest.rs), 15 VinDr classes, 14 CheXpert columns.
        assert_eq!(m.len_of("padchest"), 193);
        assert_eq!(m.len_of("vindr"), 15);
        assert_eq!(m.len_of("chexpert"), 14);
        assert_eq!(m.len_of("mimic"), 14);
    }

    #[test]
    fn same_label_reads_case_and_spaces_as_the_map_does() {
        assert!(same_label(" no   Finding", "No finding"));
        assert!(same_label("NORMAL", "normal"));
        assert!(!same_label("No findings", "No finding"));
        assert!(!same_label("Nofinding", "No finding"));
        assert_eq!(normalised("  Pleural \t Effusion "), "pleural effusion");
    }

    #[test]
    fn every_vocabulary_finding_is_reachable_from_some_dataset() {
        let text = DEFAULT_MAP;
        for f in XR_FINDINGS {
            assert!(text.contains(&format!(",{f}\n")), "{f}");
        }
    }

    #[test]
    fn user_map_is_validated() {
        let p = Path::new("my_map.csv");
        let ok = LabelMap::parse(
            "# comment\ndataset,raw_label,finding\r\nchexpert,Foo,Edema\n# c\nchexpert,\"Bar, baz\",\n",
            p,
        )
        .unwrap();
        assert_eq!(ok.lookup("chexpert", "Foo"), Lookup::Mapped("Edema"));
        // Lines ended by a lone CR, as an old Mac export writes them.
        let cr = LabelMap::parse("dataset,raw_label,finding\rsiim,PTX,Pneumothorax\r", p).unwrap();
        assert_eq!(cr.lookup("siim", "ptx"), Lookup::Mapped("Pneumothorax"));
        assert_eq!(ok.lookup("chexpert", " Bar, baz "), Lookup::Unmapped);
        assert_eq!(ok.lookup("chexpert", "Pleural Effusion"), Lookup::Unknown);

        let e = LabelMap::parse("dataset,raw_label,finding\nchexpert,Foo,Edemaa\n", p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("my_map.csv, line 2") && e.contains("Edemaa"),
            "{e}"
        );
        let e = LabelMap::parse("a,b,c\n", p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("header"), "{e}");
        let e = LabelMap::parse("dataset,raw_label,finding\nx,y\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("3 fields"), "{e}");
        let e = LabelMap::parse("# only\n", p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = LabelMap::parse(
            "dataset,raw_label,finding\npadchest,Mass,Mass\npadchest,mass,Nodule\n",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3"), "{e}");
        // A misspelt dataset maps nothing: refused, not ignored.
        let e = LabelMap::parse("dataset,raw_label,finding\nchexpret,Edema,Edema\n", p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2, column 'dataset'") && e.contains("'chexpret'"),
            "{e}"
        );
    }

    /// A user's map that changes an `nih` row is refused (the change would do
    /// nothing); the shipped rows copied unchanged are read.
    #[test]
    fn a_users_map_may_not_change_nih_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "dataset,raw_label,finding\nnih,Cardiomegaly,Edema\n").unwrap();
        let e = LabelMap::from_file(&p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("line 2"), "{e}");
        std::fs::write(&p, DEFAULT_MAP).unwrap();
        assert!(LabelMap::from_file(&p).is_ok());
    }

    #[test]
    fn from_file_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "dataset,raw_label,finding\nsiim,PTX,Pneumothorax\n").unwrap();
        let m = LabelMap::from_file(&p).unwrap();
        assert_eq!(m.lookup("siim", "PTX"), Lookup::Mapped("Pneumothorax"));
        let e = LabelMap::from_file(&dir.path().join("missing.csv")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn unknown_labels_are_reported_once() {
        let m = LabelMap::default();
        let mut r = Resolver::new(&m, "padchest");
        let mut issues = Issues::default();
        for line in [2, 3, 4] {
            assert_eq!(
                r.finding("martian", ("f.csv", Some(line), "Labels"), &mut issues)
                    .unwrap(),
                None
            );
            assert_eq!(
                r.finding("Martian ", ("f.csv", Some(line), "Labels"), &mut issues)
                    .unwrap(),
                None
            );
        }
        assert_eq!(
            r.finding("cardiomegaly", ("f.csv", Some(5), "Labels"), &mut issues)
                .unwrap(),
            Some("Cardiomegaly")
        );
        assert_eq!(issues.len(), 1);
        assert_eq!(issues.rows()[0].line, Some(2));
        assert_eq!(issues.rows()[0].value.as_deref(), Some("martian"));
    }

    /// A column of a million different words is not a label column: refused at the
    /// one past the cap, with its line and column.
    #[test]
    fn too_many_distinct_labels_is_an_error() {
        let m = LabelMap::default();
        let mut r = Resolver::new(&m, "padchest");
        let mut issues = Issues::default();
        for k in 0..MAX_DISTINCT_LABELS {
            let label = format!("label {k}");
            r.finding(&label, ("f.csv", Some(2), "Labels"), &mut issues)
                .unwrap();
        }
        // One already seen is still answered.
        assert_eq!(
            r.finding("label 7", ("f.csv", Some(9), "Labels"), &mut issues)
                .unwrap(),
            None
        );
        let e = r
            .finding("one more", ("f.csv", Some(9), "Labels"), &mut issues)
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.contains("f.csv") && text.contains("line 9") && text.contains("Labels"),
            "{text}"
        );
    }
}
