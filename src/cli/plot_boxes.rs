//! `cxr plot boxes`: where boxes lie on the normalised image, one density panel per
//! finding (the share of boxes covering each cell of a 48 × 48 grid).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::sql::snippets::quote;
use crate::sql::{Register, Warehouse};

/// The datasets whose boxes can be placed on a normalised image: those whose
/// originals all have one known size, and those whose images were measured
/// (`ingest --images`: each box is placed by its own image's size).
async fn sized(wh: &Warehouse) -> Result<Vec<String>> {
    let mut names: Vec<String> = crate::datasets::DATASETS
        .iter()
        .filter(|d| d.box_image_side.is_some())
        .map(|d| d.name.to_string())
        .collect();
    if wh.has_keyed_pixel_stats().await? {
        let rows = wh
            .query(
                "SELECT DISTINCT dataset FROM pixel_stats ORDER BY dataset",
                &[],
            )
            .await?;
        for d in rows.required_strings("dataset")? {
            if !names.contains(&d) {
                names.push(d);
            }
        }
    }
    Ok(names)
}

const GRID: usize = 48;
const MAX_PANELS: usize = 9;

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Per finding: (boxes, coverage grid).
type Panels = Vec<(String, usize, Vec<f64>)>;

/// Loads the boxes and draws the panels into `out`; without `out` (`--show-sql`),
/// prints the SQL of the boxes drawn.
pub async fn run(
    warehouse: &Path,
    datasets: &[String],
    finding: Option<&str>,
    out: Option<&Path>,
    size: (u32, u32),
) -> Result<()> {
    let wh = Warehouse::open(warehouse, Register::All).await?;
    if !wh.has_table("dataset_boxes") {
        return Err(Error::Usage(
            "this warehouse has no dataset_boxes table; run `cxr ingest` again with this cxr"
                .into(),
        ));
    }
    let sized = sized(&wh).await?;
    for d in datasets {
        if !sized.contains(d) {
            return Err(Error::Usage(format!(
                "--dataset {d}: its files do not give the images' sizes, so its boxes cannot be placed on a normalised image (measure its images with `ingest --images {d}=PATH`); boxes plot for {}",
                sized.join(", ")
            )));
        }
    }
    let chosen: Vec<&str> = if datasets.is_empty() {
        sized.iter().map(String::as_str).collect()
    } else {
        datasets.iter().map(String::as_str).collect()
    };
    // Boxes as fractions of their image's width and height.
    let pixels = wh.has_keyed_pixel_stats().await?;
    let (width, height) = crate::datasets::box_frame_sql("b", "p", pixels);
    let join = if pixels {
        " LEFT JOIN pixel_stats p ON p.dataset = b.dataset AND p.image_id = b.image_id"
    } else {
        ""
    };
    let mut sql = format!(
        "SELECT b.dataset, COALESCE(b.finding, b.raw_label) AS label, b.x / {width} AS x, b.y / {height} AS y, \
         b.w / {width} AS w, b.h / {height} AS h FROM dataset_boxes b{join} \
         WHERE b.dataset IN ({}) AND {width} IS NOT NULL AND {height} IS NOT NULL",
        chosen
            .iter()
            .map(|d| quote(d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(f) = finding {
        sql.push_str(&format!(
            " AND (lower(b.finding) = lower({q}) OR lower(b.raw_label) = lower({q}))",
            q = quote(f)
        ));
    }
    let Some(out) = out else {
        return crate::output::print_sql(&sql);
    };
    let rows = wh.query(&sql, &[]).await?;
    if rows.is_empty() {
        let labels = wh
            .query(
                &format!(
                    "SELECT DISTINCT COALESCE(finding, raw_label) AS label FROM dataset_boxes \
                     WHERE dataset IN ({}) ORDER BY label",
                    chosen
                        .iter()
                        .map(|d| quote(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[],
            )
            .await?
            .required_strings("label")?;
        return Err(Error::Usage(format!(
            "no boxes for {}{}; {}",
            chosen.join(", "),
            finding
                .map(|f| format!(" and finding `{f}`"))
                .unwrap_or_default(),
            if labels.is_empty() {
                "these datasets have no boxes here".to_string()
            } else {
                format!("their boxes are of: {}", labels.join(", "))
            }
        )));
    }
    let panels = density(
        &rows.required_strings("label")?,
        &[
            rows.required_f64s("x")?,
            rows.required_f64s("y")?,
            rows.required_f64s("w")?,
            rows.required_f64s("h")?,
        ],
    );
    // The datasets whose boxes are drawn, not every one that could have had some.
    let drawn = rows.required_strings("dataset")?;
    let shown: Vec<&str> = chosen
        .iter()
        .copied()
        .filter(|d| drawn.iter().any(|x| x == d))
        .collect();
    let title = format!("Where boxes lie ({})", shown.join(", "));
    let svg = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    crate::output::write_image_atomic(out, |tmp| {
        if svg {
            draw(
                SVGBackend::new(tmp, size).into_drawing_area(),
                &title,
                &panels,
            )
        } else {
            draw(
                BitMapBackend::new(tmp, size).into_drawing_area(),
                &title,
                &panels,
            )
        }
    })?;
    say!("wrote {}", out.display());
    Ok(())
}

/// Coverage grids per label, the most boxed labels first, from boxes given as
/// fractions of their image's side.
fn density(labels: &[String], xywh: &[Vec<f64>; 4]) -> Panels {
    let mut by: BTreeMap<&str, (usize, Vec<f64>)> = BTreeMap::new();
    for (i, label) in labels.iter().enumerate() {
        let cell = |v: f64| (v * GRID as f64).clamp(0.0, GRID as f64);
        let (x0, y0) = (cell(xywh[0][i]), cell(xywh[1][i]));
        let (x1, y1) = (cell(xywh[0][i] + xywh[2][i]), cell(xywh[1][i] + xywh[3][i]));
        let entry = by
            .entry(label)
            .or_insert_with(|| (0, vec![0.0; GRID * GRID]));
        entry.0 += 1;
        for gy in y0.floor() as usize..(y1.ceil() as usize).min(GRID) {
            for gx in x0.floor() as usize..(x1.ceil() as usize).min(GRID) {
                entry.1[gy * GRID + gx] += 1.0;
            }
        }
    }
    let mut panels: Panels = by
        .into_iter()
        .map(|(l, (n, g))| {
            (
                l.to_string(),
                n,
                g.into_iter().map(|c| c / n as f64).collect(),
            )
        })
        .collect();
    panels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    panels.truncate(MAX_PANELS);
    panels
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &Panels,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (body, _) = {
        let titled = root.titled(title, ("sans-serif", 24))?;
        (titled, ())
    };
    let cols = (panels.len() as f64).sqrt().ceil() as usize;
    let rows = panels.len().div_ceil(cols);
    let areas = body.split_evenly((rows, cols));
    for ((label, n, grid), area) in panels.iter().zip(areas) {
        let (w, h) = area.dim_in_pixel();
        let side = (w.min(h.saturating_sub(30)) as i32 - 10).max(GRID as i32);
        let cell = side / GRID as i32;
        area.draw(&Text::new(
            format!("{} ({n} boxes)", label.replace('_', " ")),
            (5, 5),
            ("sans-serif", 16).into_font(),
        ))?;
        let max = grid.iter().cloned().fold(1e-12, f64::max);
        for gy in 0..GRID {
            for gx in 0..GRID {
                let v = grid[gy * GRID + gx] / max;
                let (x, y) = (5 + gx as i32 * cell, 28 + gy as i32 * cell);
                area.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    shade(v).filled(),
                ))?;
            }
        }
        area.draw(&Rectangle::new(
            [(5, 28), (5 + cell * GRID as i32, 28 + cell * GRID as i32)],
            BLACK.stroke_width(1),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// White to dark blue.
fn shade(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_covers_the_cells_under_it() {
        // One box over the left half of the image: half the columns, every row.
        let labels = vec!["Mass".to_string()];
        let xywh = [vec![0.0], vec![0.0], vec![0.5], vec![1.0]];
        let p = density(&labels, &xywh);
        assert_eq!(p[0].1, 1);
        let covered = p[0].2.iter().filter(|&&c| c > 0.0).count();
        assert_eq!(covered, GRID * GRID / 2);
    }
}
