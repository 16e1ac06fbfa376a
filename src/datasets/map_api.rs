//! How the dataset readers ask for a raw label's finding, without depending on the
//! label-map file format: readers take a `&dyn FindingMap`. The project's label map
//! (`label_map.rs`) implements it.
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
    fn mapper_reports_unknown_once() {
        let map = crate::datasets::LabelMap::parse(
            "dataset,raw_label,finding\nvindr,Cardiomegaly,Cardiomegaly\nvindr,ILD,\n",
            std::path::Path::new("map.csv"),
        )
        .unwrap();
        assert_eq!(
            FindingMap::lookup(&map, "vindr", "ILD"),
            MapOutcome::Unmapped
        );
        assert_eq!(FindingMap::lookup(&map, "rsna", "ILD"), MapOutcome::Unknown);
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
    fn the_shipped_map_answers_through_the_trait() {
        let map = crate::datasets::LabelMap::default();
        assert_eq!(
            FindingMap::lookup(&map, "openi", "Fractures, Bone"),
            MapOutcome::Mapped("Fracture".into())
        );
        assert_eq!(
            FindingMap::lookup(&map, "vindr", "Pleural effusion"),
            MapOutcome::Mapped("Effusion".into())
        );
        assert_eq!(
            FindingMap::lookup(&map, "openi", "normal"),
            MapOutcome::Unmapped
        );
    }
}
