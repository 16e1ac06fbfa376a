//! SIIM-ACR Pneumothorax Segmentation (2019) training masks: `ImageId, EncodedPixels`
//! (a space before the second name; columns are matched after trimming), one row per
//! mask region, `-1` for an image without pneumothorax.
//!
//! - `dataset_images`: one row per image (no metadata in this file; `path` NULL, since the
//!   release nests its DICOM files by study and series UIDs the CSV does not carry).
//! - `dataset_labels`: one row per image, source `siim_2019`, raw label `Pneumothorax`:
//!   value 1 when the image has a region row (even one whose code is malformed),
//!   0 when its only rows are `-1`. An image with both gets 1 and a `data_issues` row.
//! - `dataset_boxes`: one row per region, `mask_rle` the code unchanged, `x, y, w, h` the
//!   bounding box of the decoded mask in pixels (inclusive extent: a one-pixel region
//!   has w = h = 1) and `area` its pixel count. The code is Kaggle's `rle2mask`:
//!   relative pairs (start offset from the end of the previous run, run length) over
//!   the 1024×1024 mask in column-major order (pixel index p → x = p / 1024,
//!   y = p % 1024). A malformed code (odd count, non-integer, zero-length run, past
//!   the end of the mask) drops the box with a `data_issues` row; a region repeated
//!   (its code's numbers equal, however spaced) is skipped with one.

use std::path::PathBuf;

use crate::error::Result;
use crate::input::issues::Issues;

use crate::datasets::common::{
    BoxKey, ImageList, RepeatedRows, bare_image, one_path, read_columns,
};
use crate::datasets::label_map::{LabelMap, Resolver};
use crate::datasets::{BoxRow, DatasetRows, LabelRow, Shared};

/// The dataset name.
pub const NAME: &str = "siim";
/// The label source.
pub const SOURCE: &str = "siim_2019";
/// The raw label of every row.
pub const RAW_LABEL: &str = "Pneumothorax";
/// Mask side in pixels.
pub const SIDE: u64 = 1024;

/// Bounding box and pixel count of a decoded mask region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u64,
    pub y: u64,
    pub w: u64,
    pub h: u64,
    pub area: u64,
}

/// Decodes a relative run-length code over a `width`×`height` column-major mask
/// (`height` pixels per column). Errors say what is malformed; never panics.
pub fn decode_rle(rle: &str, width: u64, height: u64) -> Result<Region, String> {
    let total = width
        .checked_mul(height)
        .filter(|&t| t > 0)
        .ok_or("mask size overflows")?;
    let mut pos: u64 = 0;
    let (mut x0, mut x1, mut y0, mut y1) = (u64::MAX, 0u64, u64::MAX, 0u64);
    let mut area: u64 = 0;
    let mut toks = rle.split_ascii_whitespace();
    let mut runs = 0u64;
    while let Some(s) = toks.next() {
        let start: u64 = s
            .parse()
            .map_err(|_| format!("'{s}' is not a non-negative integer"))?;
        let Some(l) = toks.next() else {
            return Err("odd number of values: a start without a length".into());
        };
        let len: u64 = l
            .parse()
            .map_err(|_| format!("'{l}' is not a non-negative integer"))?;
        if len == 0 {
            return Err("zero-length run".into());
        }
        let begin = pos.checked_add(start).ok_or("offset overflows")?;
        let end = begin.checked_add(len).ok_or("offset overflows")?;
        if end > total {
            return Err(format!(
                "run ends at pixel {end}, past the end of the {width}×{height} mask"
            ));
        }
        let (c0, c1) = (begin / height, (end - 1) / height);
        x0 = x0.min(c0);
        x1 = x1.max(c1);
        if c0 == c1 {
            y0 = y0.min(begin % height);
            y1 = y1.max((end - 1) % height);
        } else {
            y0 = 0;
            y1 = height - 1;
        }
        area += len;
        pos = end;
        runs += 1;
    }
    if runs == 0 {
        return Err("no runs".into());
    }
    Ok(Region {
        x: x0,
        y: y0,
        w: x1 - x0 + 1,
        h: y1 - y0 + 1,
        area,
    })
}

/// A run-length code's numbers, however they are spaced: what tells one region
/// from another (every token of a code that decodes is a number).
fn code_numbers(code: &str) -> Vec<u64> {
    code.split_ascii_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Reads the SIIM-ACR training RLE CSV (`paths` holds exactly that file).
pub fn read(paths: &[PathBuf], map: &LabelMap, issues: &mut Issues) -> Result<DatasetRows> {
    let path = one_path(NAME, paths)?;
    let (t, c) = read_columns(
        path,
        issues,
        "SIIM-ACR",
        &[
            ("ImageId", &["imageid"]),
            ("EncodedPixels", &["encodedpixels"]),
        ],
    )?;
    let ids = t.values(c[0])?;
    let codes = t.values(c[1])?;
    let names = [t.name(c[0]), t.name(c[1])];
    let src = t.source.clone();
    let mut resolver = Resolver::new(map, NAME);
    let (source, raw_label) = (Shared::from(SOURCE), Shared::from(RAW_LABEL));
    let finding = resolver.finding(RAW_LABEL, (&src, None, names[1]), issues)?;
    let mut images = ImageList::default();
    // Per image: (has a -1 row, has a region row).
    let mut state: Vec<(bool, bool)> = Vec::new();
    let mut rows = DatasetRows::default();
    let mut conflict_reported = vec![];
    let mut repeated = RepeatedRows::default();

    for (r, &line) in t.lines.iter().enumerate() {
        let Some(id) = ids[r] else {
            issues.push(
                &src,
                Some(line),
                Some(names[0]),
                None,
                "no ImageId; row skipped",
            );
            continue;
        };
        let (img, new) = images.add(bare_image(NAME, id, None));
        if new {
            state.push((false, false));
            conflict_reported.push(false);
        }
        let Some(code) = codes[r] else {
            issues.push(
                &src,
                Some(line),
                Some(names[1]),
                None,
                "empty EncodedPixels: row ignored",
            );
            continue;
        };
        if code == "-1" {
            state[img].0 = true;
        } else {
            state[img].1 = true;
            match decode_rle(code, SIDE, SIDE) {
                Ok(g) => {
                    let key = BoxKey::region(id, RAW_LABEL, &code_numbers(code));
                    if repeated.first(key, (&src, line, names[1]), issues) {
                        rows.boxes.push(BoxRow {
                            dataset: NAME,
                            image_id: id.to_string(),
                            source: SOURCE.to_string(),
                            raw_label: RAW_LABEL.to_string(),
                            finding,
                            reader: None,
                            x: g.x as f64,
                            y: g.y as f64,
                            w: g.w as f64,
                            h: g.h as f64,
                            mask_rle: Some(code.to_string()),
                            area: Some(g.area as f64),
                        });
                    }
                }
                Err(why) => {
                    let shown: String = code.chars().take(200).collect();
                    issues.push(
                        &src,
                        Some(line),
                        Some(names[1]),
                        Some(shown.as_str()),
                        format!("malformed run-length code ({why}); box dropped, image still labelled positive"),
                    );
                }
            }
        }
        if state[img].0 && state[img].1 && !conflict_reported[img] {
            conflict_reported[img] = true;
            issues.push(
                &src,
                Some(line),
                Some(names[1]),
                Some(code.chars().take(200).collect::<String>().as_str()),
                "image has both '-1' and mask rows: labelled positive",
            );
        }
    }
    for (img, &(neg, pos)) in state.iter().enumerate() {
        if !neg && !pos {
            continue;
        }
        rows.labels.push(LabelRow {
            dataset: NAME,
            image_id: images.images[img].image_id.clone(),
            source: source.clone(),
            raw_label: raw_label.clone(),
            finding,
            value: if pos { 1 } else { 0 },
        });
    }
    rows.images = images.images;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support::{shared_datasets, write_fixture};

    #[test]
    fn rle_decoding() {
        // One pixel at index 5 of a 4×4 mask: column 1, row 1.
        assert_eq!(
            decode_rle("5 1", 4, 4),
            Ok(Region {
                x: 1,
                y: 1,
                w: 1,
                h: 1,
                area: 1
            })
        );
        // Relative starts: runs at [1,3) then (3+2)=[5,7): rows 1..2 of column 0 and
        // rows 1..2 of column 1.
        assert_eq!(
            decode_rle("1 2 2 2", 4, 4),
            Ok(Region {
                x: 0,
                y: 1,
                w: 2,
                h: 2,
                area: 4
            })
        );
        // A run crossing a column boundary spans all rows: [3,5) is (0,3) and (1,0).
        assert_eq!(
            decode_rle("3 2", 4, 4),
            Ok(Region {
                x: 0,
                y: 0,
                w: 2,
                h: 4,
                area: 2
            })
        );
        // The whole mask; then one past the end.
        assert_eq!(
            decode_rle("0 16", 4, 4),
            Ok(Region {
                x: 0,
                y: 0,
                w: 4,
                h: 4,
                area: 16
            })
        );
        assert!(decode_rle("0 17", 4, 4).is_err());
        assert!(decode_rle("10 2 5 1", 4, 4).is_err());
        for bad in [
            "",
            "1",
            "1 2 3",
            "a 1",
            "1 -2",
            "1 0",
            "18446744073709551615 2",
            "1.5 2",
        ] {
            assert!(decode_rle(bad, 4, 4).is_err(), "{bad}");
        }
        assert!(decode_rle("18446744073709551615 1", u64::MAX, 2).is_err());
        assert!(decode_rle("1 1", u64::MAX, 3).is_err());
    }

    const FIXTURE: &str = "\
ImageId, EncodedPixels
1.2.1,-1
1.2.2, 2049 3 1021 3
1.2.2,1048574 2
1.2.3,1 2 3
1.2.4,-1
1.2.4,0 1
1.2.5,
";

    #[test]
    fn fixture() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_fixture(dir.path(), "siim.csv", FIXTURE.as_bytes());
        let mut issues = Issues::default();
        let rows = read(&[p], &crate::datasets::LabelMap::default(), &mut issues).unwrap();
        assert_eq!(rows.images.len(), 5);
        let labels: Vec<(&str, i8)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, l.value))
            .collect();
        assert_eq!(
            labels,
            [("1.2.1", 0), ("1.2.2", 1), ("1.2.3", 1), ("1.2.4", 1)]
        );
        assert!(
            rows.labels
                .iter()
                .all(|l| &*l.source == "siim_2019" && l.finding == Some("Pneumothorax"))
        );
        assert_eq!(rows.boxes.len(), 3);
        // 2049 = column 2, row 1: rows 1..3; then 2052 + 1021 = 3073 = column 3, row 1.
        let b = &rows.boxes[0];
        assert_eq!(
            (b.x, b.y, b.w, b.h, b.area),
            (2.0, 1.0, 2.0, 3.0, Some(6.0))
        );
        assert_eq!(b.mask_rle.as_deref(), Some("2049 3 1021 3"));
        // The last two pixels of the mask: column 1023, rows 1022..1023.
        let b = &rows.boxes[1];
        assert_eq!(
            (b.x, b.y, b.w, b.h, b.area),
            (1023.0, 1022.0, 1.0, 2.0, Some(2.0))
        );
        let b = &rows.boxes[2];
        assert_eq!((b.x, b.y, b.w, b.h), (0.0, 0.0, 1.0, 1.0));
        let got: Vec<(Option<i64>, Option<&str>)> = issues
            .rows()
            .iter()
            .map(|i| (i.line, i.field.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(5), Some("EncodedPixels")),
                (Some(7), Some("EncodedPixels")),
                (Some(8), Some("EncodedPixels"))
            ]
        );
        assert!(issues.rows()[0].issue.contains("odd number"));
    }

    /// A region is the same region whatever the spacing of its code: line 3 repeats
    /// line 2 and is skipped with a row; line 4's other start is a region of its own.
    #[test]
    fn the_same_region_spaced_otherwise_is_one_box() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_fixture(
            dir.path(),
            "siim.csv",
            b"ImageId,EncodedPixels\nj,5 10\nj,5  10\nj,6 10\n",
        );
        let mut issues = Issues::default();
        let rows = read(&[p], &crate::datasets::LabelMap::default(), &mut issues).unwrap();
        let codes: Vec<Option<&str>> = rows.boxes.iter().map(|b| b.mask_rle.as_deref()).collect();
        assert_eq!(codes, [Some("5 10"), Some("6 10")]);
        let got: Vec<(Option<i64>, Option<&str>, &str)> = issues
            .rows()
            .iter()
            .map(|i| (i.line, i.field.as_deref(), i.issue.as_str()))
            .collect();
        assert_eq!(
            got,
            [(
                Some(3),
                Some("EncodedPixels"),
                "the same box as line 2; skipped"
            )]
        );
        let labels: Vec<(&str, i8)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, l.value))
            .collect();
        assert_eq!(labels, [("j", 1)]);
    }

    #[test]
    fn wrong_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_fixture(dir.path(), "vindr.csv", b"image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\na,No finding,14,R1,,,,\n");
        let m = read(
            &[p],
            &crate::datasets::LabelMap::default(),
            &mut Issues::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.contains("vindr.csv") && m.contains("'EncodedPixels'"),
            "{m}"
        );
    }

    /// Real file: rows, images and `-1` rows from SOURCES.md; images with a mask
    /// (2,669) and total mask pixels from one independent Python run applying
    /// Kaggle's rle2mask to every row: 39,729,957 pixels, no malformed code.
    #[test]
    fn real_file() {
        let Some(dir) = shared_datasets() else { return };
        let mut issues = Issues::default();
        let rows = read(
            &[dir.join("siim-pneumothorax-train-rle.csv.gz")],
            &crate::datasets::LabelMap::default(),
            &mut issues,
        )
        .unwrap();
        assert_eq!(rows.images.len(), 12_047);
        assert_eq!(rows.labels.len(), 12_047);
        assert_eq!(rows.boxes.len(), 12_954 - 9_378);
        assert_eq!(
            rows.labels.iter().filter(|l| l.value == 1).count(),
            SIIM_POSITIVE_IMAGES
        );
        let area: f64 = rows.boxes.iter().filter_map(|b| b.area).sum();
        assert_eq!(area, SIIM_MASK_PIXELS);
        assert_eq!(
            issues.len(),
            SIIM_ISSUES,
            "{:?}",
            &issues.rows()[..issues.len().min(5)]
        );
    }

    const SIIM_POSITIVE_IMAGES: usize = 2_669;
    const SIIM_MASK_PIXELS: f64 = 39_729_957.0;
    const SIIM_ISSUES: usize = 0;
}
