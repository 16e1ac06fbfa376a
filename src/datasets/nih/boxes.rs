//! `BBox_List_2017.csv` → `bboxes`.

use datafusion::arrow::array::RecordBatch;
use polars::prelude::PlHashMap;

use super::metadata::Image;
use crate::datasets::common::box_geometry_problem as geometry_problem;
use crate::datasets::common::{BoxKey, RepeatedRows};
use crate::error::Result;
use crate::findings::{Label, classify};
use crate::input::csv::CsvTable;
use crate::input::issues::Issues;
use crate::input::table::{batch, f64s, i32s, text};

/// Side of the source images the box coordinates refer to.
pub const SOURCE_SIZE: f64 = crate::datasets::common::BOX_IMAGE_SIZE;
/// Side of the downscaled images.
pub const SMALL_SIZE: f64 = 224.0;

/// One cleaned box.
#[derive(Debug, Clone)]
pub struct BBox {
    /// Image file name.
    pub image_index: String,
    /// Patient, from the metadata (or the file name when the image is unknown).
    pub patient_id: i32,
    /// Normalised finding.
    pub label: &'static str,
    /// x, y, w, h in 1024 × 1024 space.
    pub xywh: [f64; 4],
}

/// Cleans the box list read into `t`. `images` is keyed by image index.
pub fn clean(
    t: &CsvTable,
    images: &PlHashMap<&str, &Image>,
    issues: &mut Issues,
) -> Result<Vec<BBox>> {
    let index = t.require("Image Index", &["imageindex", "image"])?;
    let label_col = t.require("Finding Label", &["findinglabel", "findinglabels", "label"])?;
    // `Bbox [x,y,w,h]` is split over four header fields (quoted as one, the CSV
    // reader splits it too).
    let coords = [
        t.require("Bbox [x", &["bboxx", "x"])?,
        t.require("y", &["y", "bboxy"])?,
        t.require("w", &["w", "bboxw"])?,
        t.require("h]", &["h", "bboxh"])?,
    ];
    let names = coords.map(|c| t.name(c).to_string());
    let idx = t.values(index)?;
    let lab = t.values(label_col)?;
    let xs: Vec<Vec<Option<&str>>> = coords.iter().map(|&c| t.values(c)).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(t.len());
    let mut repeated = RepeatedRows::default();
    'rows: for r in 0..t.len() {
        let line = Some(t.lines[r]);
        let Some(image_index) = idx[r] else {
            refuse(
                issues,
                &t.source,
                line,
                t.name(index),
                None,
                "Image Index is empty",
            );
            continue;
        };
        let raw_label = lab[r].unwrap_or("");
        let label = match classify(raw_label) {
            Label::Exact(f) => f,
            Label::Normalised(f) => {
                issues.push(
                    &t.source,
                    line,
                    Some(t.name(label_col)),
                    Some(raw_label),
                    format!("label '{raw_label}' normalised to '{f}'"),
                );
                f
            }
            _ => {
                refuse(
                    issues,
                    &t.source,
                    line,
                    t.name(label_col),
                    lab[r],
                    "not one of the 14 findings",
                );
                continue;
            }
        };
        let mut xywh = [0.0; 4];
        for k in 0..4 {
            match xs[k][r]
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            {
                Some(v) => xywh[k] = v,
                None => {
                    refuse(
                        issues,
                        &t.source,
                        line,
                        &names[k],
                        xs[k][r],
                        "coordinate is not a number",
                    );
                    continue 'rows;
                }
            }
        }
        if let Some(why) = geometry_problem(xywh) {
            let [x, y, w, h] = xywh;
            refuse(
                issues,
                &t.source,
                line,
                "Bbox [x,y,w,h]",
                Some(format!("{x},{y},{w},{h}").as_str()),
                why,
            );
            continue;
        }
        // The same box given twice would count twice (as in VinDr, RSNA, SIIM).
        let key = BoxKey::rectangle(image_index, label, "", &xywh);
        if !repeated.first(key, (&t.source, t.lines[r], t.name(index)), issues) {
            continue;
        }
        let patient_id = match images.get(image_index) {
            Some(img) => {
                if !img.labels.contains(&label) {
                    issues.push(
                        &t.source,
                        line,
                        Some(t.name(label_col)),
                        Some(raw_label),
                        format!("box label '{label}' is not among the image's labels; box kept"),
                    );
                }
                img.patient_id
            }
            None => match patient_from_name(image_index) {
                Some(p) => {
                    issues.push(
                        &t.source,
                        line,
                        Some(t.name(index)),
                        Some(image_index),
                        "image not in the metadata; patient_id taken from the file name",
                    );
                    p
                }
                None => {
                    refuse(
                        issues,
                        &t.source,
                        line,
                        t.name(index),
                        Some(image_index),
                        "image not in the metadata",
                    );
                    continue;
                }
            },
        };
        out.push(BBox {
            image_index: image_index.to_string(),
            patient_id,
            label,
            xywh,
        });
    }
    Ok(out)
}

fn refuse(
    issues: &mut Issues,
    source: &str,
    line: Option<u64>,
    field: &str,
    value: Option<&str>,
    why: &str,
) {
    issues.push(
        source,
        line,
        Some(field),
        value,
        format!("{why}; box refused"),
    );
}

/// `00013118_008.png` → 13118.
pub fn patient_from_name(name: &str) -> Option<i32> {
    name.split('_').next()?.parse().ok()
}

/// Builds the `bboxes` table.
pub fn boxes_batch(boxes: &[BBox]) -> Result<RecordBatch> {
    let scale = SMALL_SIZE / SOURCE_SIZE;
    let coord = |k: usize, s: f64| f64s(boxes.iter().map(|b| Some(b.xywh[k] * s)));
    batch(vec![
        (
            "image_index",
            text(boxes.iter().map(|b| b.image_index.as_str())),
        ),
        ("patient_id", i32s(boxes.iter().map(|b| Some(b.patient_id)))),
        ("label", text(boxes.iter().map(|b| b.label))),
        ("x", coord(0, 1.0)),
        ("y", coord(1, 1.0)),
        ("w", coord(2, 1.0)),
        ("h", coord(3, 1.0)),
        ("x_224", coord(0, scale)),
        ("y_224", coord(1, scale)),
        ("w_224", coord(2, scale)),
        ("h_224", coord(3, scale)),
    ])
}
