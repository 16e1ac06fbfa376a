//! Tables derived at ingest from the whole warehouse: `followups` and
//! `cooccurrence`, the materialised forms of the views of the same names
//! (`src/sql/views/*.sql`). They depend only on the images of the metadata, so they
//! are computed once here, from the cleaned rows, instead of on every query; the
//! cohort commands still run the views' SQL over their cohort. Their columns, types
//! and values are the views' own (a test compares the two).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, ListArray, ListBuilder, StringBuilder};

use super::table::{batch, f64s, i16s, i32s, i64s, optional_list_utf8, text};
use crate::datasets::nih::metadata::{Image, known_labels};
use crate::error::Result;
use crate::findings::FINDINGS;
use crate::warehouse::{Staging, parquet};

/// The derived tables, in write order.
pub const TABLES: [&str; 2] = ["followups", "cooccurrence"];

/// Builds and writes the derived tables into the staging directory.
pub fn write(images: &[Image], staging: &Staging) -> Result<Vec<(String, u64)>> {
    let t = std::time::Instant::now();
    let followups = followups_batch(images)?;
    let rows_f = parquet::write_table(&staging.path("followups.parquet"), &followups)?;
    let cooccurrence = cooccurrence_batch(images)?;
    let rows_c = parquet::write_table(&staging.path("cooccurrence.parquet"), &cooccurrence)?;
    crate::trace("  write followups, cooccurrence", t);
    Ok(vec![
        ("followups".to_string(), rows_f),
        ("cooccurrence".to_string(), rows_c),
    ])
}

/// A bit per finding, in FINDINGS order.
fn mask(labels: &[&str]) -> u16 {
    labels
        .iter()
        .filter_map(|l| FINDINGS.iter().position(|f| f == l))
        .fold(0, |m, i| m | 1 << i)
}

/// A nullable `List(Utf8)` column from finding bitmasks (labels in FINDINGS order,
/// which is the sorted order `labels` keeps).
fn mask_lists(rows: impl IntoIterator<Item = Option<u16>>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in rows {
        match r {
            Some(m) => {
                for (i, f) in FINDINGS.iter().enumerate() {
                    if m & (1 << i) != 0 {
                        b.values().append_value(f);
                    }
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    let list: ListArray = b.finish();
    Arc::new(list)
}

/// `followups`: each patient's images in study order (follow_up, then image_index),
/// with the labels of the previous study and the labels new and resolved since.
pub fn followups_batch(images: &[Image]) -> Result<datafusion::arrow::array::RecordBatch> {
    let order = crate::datasets::nih::metadata::in_study_order(images);
    let n = order.len();
    let mut rank = Vec::with_capacity(n);
    // None where an image has no labels (an empty `Finding Labels`): what is new or
    // resolved next to it is unknown, as the SQL's array_except over a NULL says.
    let mut prev: Vec<Option<u16>> = Vec::with_capacity(n);
    let mut labels: Vec<Option<u16>> = Vec::with_capacity(n);
    for (k, img) in order.iter().enumerate() {
        let m = known_labels(img).map(mask);
        let first = k == 0 || order[k - 1].patient_id != img.patient_id;
        let r = if first { 1 } else { rank[k - 1] + 1 };
        rank.push(r);
        prev.push(if first { None } else { labels[k - 1] });
        labels.push(m);
    }
    let since = |change: fn(u16, u16) -> u16| {
        mask_lists(prev.iter().zip(&labels).map(|(p, m)| match (p, m) {
            (Some(p), Some(m)) => Some(change(*p, *m)),
            _ => None,
        }))
    };
    let labels_col = optional_list_utf8(order.iter().map(|i| known_labels(i)));
    batch(vec![
        ("patient_id", i32s(order.iter().map(|i| Some(i.patient_id)))),
        (
            "image_index",
            text(order.iter().map(|i| i.image_index.as_str())),
        ),
        ("follow_up", i32s(order.iter().map(|i| Some(i.follow_up)))),
        ("study_rank", i32s(rank.iter().map(|r| Some(*r)))),
        ("age", i16s(order.iter().map(|i| i.age))),
        ("labels", labels_col),
        ("prev_labels", mask_lists(prev.iter().copied())),
        ("new_labels", since(|p, m| m & !p)),
        ("resolved_labels", since(|p, m| p & !m)),
    ])
}

/// `cooccurrence`: every ordered pair of two different findings with their counts,
/// P(b | a), Jaccard and lift, computed as the view computes them.
pub fn cooccurrence_batch(images: &[Image]) -> Result<datafusion::arrow::array::RecordBatch> {
    let total = images.len() as f64;
    let mut n = [0i64; 14];
    let mut both = [[0i64; 14]; 14];
    for img in images {
        let m = mask(&img.labels);
        for a in 0..14 {
            if m & (1 << a) != 0 {
                n[a] += 1;
                for (b, slot) in both[a].iter_mut().enumerate() {
                    if m & (1 << b) != 0 {
                        *slot += 1;
                    }
                }
            }
        }
    }
    let mut rows = Vec::with_capacity(182);
    for a in 0..14 {
        for b in 0..14 {
            if a != b {
                rows.push((a, b));
            }
        }
    }
    let nz = |x: f64| if x == 0.0 { None } else { Some(x) };
    batch(vec![
        ("label_a", text(rows.iter().map(|&(a, _)| FINDINGS[a]))),
        ("label_b", text(rows.iter().map(|&(_, b)| FINDINGS[b]))),
        ("n_a", i64s(rows.iter().map(|&(a, _)| Some(n[a])))),
        ("n_b", i64s(rows.iter().map(|&(_, b)| Some(n[b])))),
        ("n_ab", i64s(rows.iter().map(|&(a, b)| Some(both[a][b])))),
        (
            "p_b_given_a",
            f64s(
                rows.iter()
                    .map(|&(a, b)| nz(n[a] as f64).map(|d| both[a][b] as f64 / d)),
            ),
        ),
        (
            "jaccard",
            f64s(rows.iter().map(|&(a, b)| {
                nz((n[a] + n[b] - both[a][b]) as f64).map(|d| both[a][b] as f64 / d)
            })),
        ),
        (
            "lift",
            f64s(rows.iter().map(|&(a, b)| {
                nz(n[a] as f64 * n[b] as f64).map(|d| both[a][b] as f64 * total / d)
            })),
        ),
    ])
}
