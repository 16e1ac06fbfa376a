//! Google's 2019 radiologist-adjudicated labels → `expert_labels`.

use datafusion::arrow::array::RecordBatch;
use polars::prelude::PlHashMap;

use super::metadata::Image;
use crate::error::Result;
use crate::input::csv::CsvTable;
use crate::input::issues::Issues;
use crate::input::table::{batch, bools, text, utf8};

/// The four adjudicated findings: (table column, header name, squashed aliases).
const FLAGS: [(&str, &str, &[&str]); 4] = [
    ("fracture", "Fracture", &["fracture"]),
    ("pneumothorax", "Pneumothorax", &["pneumothorax"]),
    ("airspace_opacity", "Airspace opacity", &["airspaceopacity"]),
    ("nodule_or_mass", "Nodule or mass", &["noduleormass"]),
];

/// One cleaned row of the expert file.
#[derive(Debug, Clone)]
pub struct ExpertRow {
    /// Image file name.
    pub image_index: String,
    /// fracture, pneumothorax, airspace_opacity, nodule_or_mass.
    pub flags: [Option<bool>; 4],
    /// `test` or `val`.
    pub set_id: Option<String>,
}

/// Cleans the expert label file read into `t`.
pub fn clean(
    t: &CsvTable,
    images: &PlHashMap<&str, &Image>,
    issues: &mut Issues,
) -> Result<Vec<ExpertRow>> {
    let index = t.require("Image Index", &["imageindex", "image"])?;
    let set = t.require("Set Id", &["setid", "set"])?;
    let flag_pos: Vec<usize> = FLAGS
        .iter()
        .map(|(_, name, aliases)| t.require(name, aliases))
        .collect::<Result<_>>()?;
    let idx = t.values(index)?;
    let sets = t.values(set)?;
    let flag_vals: Vec<Vec<Option<&str>>> = flag_pos
        .iter()
        .map(|&p| t.values(p))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(t.len());
    // An image labelled twice (a row repeated, or in two sets) would count twice in
    // every agreement: the first row is kept.
    let mut seen = polars::prelude::PlHashMap::default();
    for r in 0..t.len() {
        let line = Some(t.lines[r]);
        let at = (t.source.as_str(), t.lines[r], t.name(index));
        let Some(image_index) = crate::datasets::common::claim_id(&mut seen, idx[r], at, issues)
        else {
            continue;
        };
        if !images.contains_key(image_index) {
            issues.push(
                &t.source,
                line,
                Some(t.name(index)),
                Some(image_index),
                "image not in the metadata; row kept",
            );
        }
        let mut flags = [None; 4];
        for k in 0..4 {
            let v = flag_vals[k][r];
            flags[k] = v.and_then(parse_bool);
            if flags[k].is_none() {
                issues.push(
                    &t.source,
                    line,
                    Some(t.name(flag_pos[k])),
                    v,
                    "not YES or NO; set to NULL",
                );
            }
        }
        let set_id = sets[r].and_then(|s| {
            let lower = s.to_ascii_lowercase();
            if !matches!(lower.as_str(), "test" | "val") {
                issues.push(
                    &t.source,
                    line,
                    Some(t.name(set)),
                    Some(s),
                    "Set Id is not test or val; set to NULL",
                );
                return None;
            }
            if lower != s {
                issues.push(
                    &t.source,
                    line,
                    Some(t.name(set)),
                    Some(s),
                    format!("normalised to '{lower}'"),
                );
            }
            Some(lower)
        });
        out.push(ExpertRow {
            image_index: image_index.to_string(),
            flags,
            set_id,
        });
    }
    Ok(out)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_uppercase().as_str() {
        "YES" | "Y" | "TRUE" | "T" | "1" => Some(true),
        "NO" | "N" | "FALSE" | "F" | "0" => Some(false),
        _ => None,
    }
}

/// Builds the `expert_labels` table.
pub fn expert_batch(rows: &[ExpertRow]) -> Result<RecordBatch> {
    let mut cols = vec![(
        "image_index",
        text(rows.iter().map(|r| r.image_index.as_str())),
    )];
    for (k, (name, _, _)) in FLAGS.iter().enumerate() {
        cols.push((*name, bools(rows.iter().map(|r| r.flags[k]))));
    }
    cols.push(("set_id", utf8(rows.iter().map(|r| r.set_id.as_deref()))));
    batch(cols)
}
