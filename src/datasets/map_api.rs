//! How the dataset readers ask for a raw label's finding, without depending on the
//! label-map file format: readers take a `&dyn FindingMap`. The project's label map
//! (`label_map.rs`) implements it; tests use [`StaticMap`].
//!
//! The rule of docs/DATASETS.md: a raw label in a map row with a finding gets that
//! finding; one in a row with an empty finding is kept with a NULL finding; one in no
//! row is kept with a NULL finding and reported once per distinct label in
//! `data_issues` (done here by [`Mapper`]).

use std::collections::{HashMap, HashSet};

use crate::input::issues::Issues;

/// What the map says about one raw label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOutcome {
    /// A map row gives this finding.
    Mapped(String),
    /// A map row keeps the label without a finding.
    Unmapped,
    /// No map row names the label.
    Unknown,
}

/// Raw label → finding, per dataset.
pub trait FindingMap {
    /// The map's answer for `raw` (as the source spells it) in `dataset`.
    fn lookup(&self, dataset: &str, raw: &str) -> MapOutcome;
}

/// A map given as `(dataset, raw_label, finding)` rows; an empty finding keeps the
/// label unmapped. Lookup is exact (case-sensitive), as the map file is.
#[derive(Debug, Clone, Default)]
pub struct StaticMap {
    rows: HashMap<(String, String), String>,
}

impl StaticMap {
    /// A map of `rows`; a later row for the same (dataset, raw label) wins.
    pub fn new<'a>(rows: impl IntoIterator<Item = &'a (&'a str, &'a str, &'a str)>) -> Self {
        StaticMap {
            rows: rows
                .into_iter()
                .map(|(d, r, f)| ((d.to_string(), r.to_string()), f.to_string()))
                .collect(),
        }
    }
}

impl FindingMap for StaticMap {
    fn lookup(&self, dataset: &str, raw: &str) -> MapOutcome {
        match self.rows.get(&(dataset.to_string(), raw.to_string())) {
            Some(f) if f.is_empty() => MapOutcome::Unmapped,
            Some(f) => MapOutcome::Mapped(f.clone()),
            None => MapOutcome::Unknown,
        }
    }
}

/// The shipped map (`label_map.csv`; the VinDr, RSNA, SIIM and OpenI rows are these,
/// `dataset,raw_label,finding`), following TorchXRayVision 1.5.7 `datasets.py`
/// (VinDr_Dataset, RSNA_Pneumonia_Dataset, SIIM_Pneumothorax_Dataset, Openi_Dataset,
/// then `relabel_dataset` onto the default pathologies: a label whose txrv pathology
/// is not one of the 18 findings is kept unmapped). OpenI rows are every MeSH heading
/// (the text before the first `/` of a `major` term, trimmed) of NLMCXR_reports.tgz,
/// mapped as txrv matches MeSH terms: lower-cased substring of a pathology name or
/// synonym (`atelectases`, `infiltrate`, `pleural thickening`; `opacity` →
/// Lung_Opacity, `lesion` → Lung_Lesion).
pub const DS2_MAP_CSV: &str = include_str!("label_map.csv");

impl StaticMap {
    /// [`DS2_MAP_CSV`] as a map (quoted fields allowed, no embedded quotes).
    pub fn ds2() -> Self {
        let rows: Vec<(String, String, String)> = DS2_MAP_CSV
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter(|l| !l.starts_with("dataset,raw_label"))
            .map(|l| {
                let f = crate::input::csv::split_record(l);
                let g = |i: usize| f.get(i).cloned().unwrap_or_default();
                (g(0), g(1), g(2))
            })
            .collect();
        StaticMap {
            rows: rows.into_iter().map(|(d, r, f)| ((d, r), f)).collect(),
        }
    }
}

impl FindingMap for crate::datasets::LabelMap {
    fn lookup(&self, dataset: &str, raw: &str) -> MapOutcome {
        match crate::datasets::LabelMap::lookup(self, dataset, raw) {
            crate::datasets::Lookup::Mapped(f) => MapOutcome::Mapped(f.to_string()),
            crate::datasets::Lookup::Unmapped => MapOutcome::Unmapped,
            crate::datasets::Lookup::Unknown => MapOutcome::Unknown,
        }
    }
}

/// Looks raw labels up for one reader: remembers which unknown labels were already
/// reported, so each is reported once.
pub struct Mapper<'a> {
    map: &'a dyn FindingMap,
    dataset: &'static str,
    source_file: String,
    reported: HashSet<String>,
    cache: HashMap<String, Option<String>>,
}

impl<'a> Mapper<'a> {
    /// A mapper for `dataset`; unknown labels are reported against `source_file`.
    pub fn new(map: &'a dyn FindingMap, dataset: &'static str, source_file: &str) -> Self {
        Mapper {
            map,
            dataset,
            source_file: source_file.to_string(),
            reported: HashSet::new(),
            cache: HashMap::new(),
        }
    }

    /// The finding of `raw`, reporting it in `issues` the first time it is unknown
    /// (with the line and column where it was first seen).
    pub fn finding(
        &mut self,
        raw: &str,
        line: Option<u64>,
        field: &str,
        issues: &mut Issues,
    ) -> Option<String> {
        if let Some(f) = self.cache.get(raw) {
            return f.clone();
        }
        let f = match self.map.lookup(self.dataset, raw) {
            MapOutcome::Mapped(f) => Some(f),
            MapOutcome::Unmapped => None,
            MapOutcome::Unknown => {
                if self.reported.insert(raw.to_string()) {
                    issues.push(
                        &self.source_file,
                        line,
                        Some(field),
                        Some(raw),
                        format!(
                            "label not in the label map for dataset '{}': kept with a NULL finding (reported once per label)",
                            self.dataset
                        ),
                    );
                }
                None
            }
        };
        self.cache.insert(raw.to_string(), f.clone());
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_map_and_mapper_report_unknown_once() {
        let map = StaticMap::new(&[
            ("vindr", "Cardiomegaly", "Cardiomegaly"),
            ("vindr", "ILD", ""),
        ]);
        assert_eq!(map.lookup("vindr", "ILD"), MapOutcome::Unmapped);
        assert_eq!(map.lookup("rsna", "ILD"), MapOutcome::Unknown);
        let mut issues = Issues::default();
        let mut m = Mapper::new(&map, "vindr", "f.csv");
        assert_eq!(
            m.finding("Cardiomegaly", Some(2), "class_name", &mut issues)
                .as_deref(),
            Some("Cardiomegaly")
        );
        assert_eq!(m.finding("ILD", Some(3), "class_name", &mut issues), None);
        assert!(issues.is_empty());
        assert_eq!(m.finding("Thing", Some(4), "class_name", &mut issues), None);
        assert_eq!(m.finding("Thing", Some(5), "class_name", &mut issues), None);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues.rows()[0].line, Some(4));
    }

    #[test]
    fn ds2_rows_map_only_into_the_vocabulary() {
        let map = StaticMap::ds2();
        let data_lines = DS2_MAP_CSV
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter(|l| !l.starts_with("dataset,raw_label"))
            .count();
        assert_eq!(map.rows.len(), data_lines);
        for ((d, r), f) in &map.rows {
            assert!(
                f.is_empty() || super::super::XR_FINDINGS.contains(&f.as_str()),
                "{d},{r},{f}"
            );
        }
        assert_eq!(
            map.lookup("openi", "Fractures, Bone"),
            MapOutcome::Mapped("Fracture".into())
        );
        assert_eq!(
            map.lookup("vindr", "Pleural effusion"),
            MapOutcome::Mapped("Effusion".into())
        );
        assert_eq!(map.lookup("openi", "normal"), MapOutcome::Unmapped);
    }
}
