//! `cxr plot`: co-occurrence heatmap, finding prevalence bars, age histogram by sex,
//! and the distribution of per-image mean intensity, as SVG or PNG (plotters).

use clap::{Args, ValueEnum};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cli::AnalysisArgs;
use crate::cli::cooccur::Metric;
use crate::error::{Error, Result};
use crate::findings::FINDINGS;

/// What to plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlotKind {
    /// Heatmap of the co-occurrence metric (NIH 14 × 14; across datasets, 18 × 18).
    Cooccurrence,
    /// Prevalence of each finding (bars).
    Labels,
    /// Age histogram by sex (images of unknown sex as bars of their own).
    Age,
    /// Distribution of per-image mean intensity (needs pixel statistics).
    Pixels,
    /// Where boxes lie on the normalised image, a density panel per finding
    /// (cross-dataset boxes: --dataset, --finding).
    Boxes,
}

/// Arguments of `cxr plot`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cxr plot cooccurrence --metric lift --out cooc.svg\n  cxr plot age --with Effusion --out age.png"
)]
pub struct PlotCmd {
    /// The plot.
    #[arg(value_enum, ignore_case = true)]
    pub kind: PlotKind,
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// The heatmap's value.
    #[arg(long, value_enum, ignore_case = true)]
    pub metric: Option<Metric>,
    /// Image size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1000x800", value_name = "WxH")]
    pub size: String,
    /// `boxes`: only this finding (or raw label).
    #[arg(long, value_name = "FINDING")]
    pub finding: Option<String>,
    /// Each dataset's panel on scales of its own (by default the panels share their
    /// axes and colour scale, so they compare by eye).
    #[arg(long)]
    pub free_scales: bool,
}

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn parse_size(s: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::Usage(format!(
            "--size `{s}`: expected WIDTHxHEIGHT, e.g. 1000x800"
        ))
    };
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h) = (
        w.trim().parse::<u32>().map_err(|_| bad())?,
        h.trim().parse::<u32>().map_err(|_| bad())?,
    );
    if !(200..=8000).contains(&w) || !(200..=8000).contains(&h) {
        return Err(Error::Usage(format!(
            "--size `{s}`: {w}x{h} is out of range; width and height must each be 200 to 8000 pixels"
        )));
    }
    Ok((w, h))
}

/// Registers a TrueType font for text: `$CXR_FONT`, else DejaVu Sans.
fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        // A font the user names must be there: falling back would hide the typo.
        let named = std::env::var_os("CXR_FONT").filter(|v| !v.is_empty());
        let bytes = match &named {
            Some(p) => read_font(std::path::Path::new(p))
                .map_err(|e| format!("CXR_FONT={}: {e}", p.to_string_lossy()))?,
            None => [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            ]
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or("no TrueType font found for plot text; set CXR_FONT to a .ttf file (e.g. DejaVuSans.ttf)")?,
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| {
            let which = named.map_or(String::new(), |p| format!("CXR_FONT={}: ", p.to_string_lossy()));
            format!("{which}the plot font is not a valid TrueType font")
        })
    })
    .clone()
    .map_err(Error::Usage)
}

/// The largest font file read: TrueType fonts of whole scripts stay under this.
const MAX_FONT_BYTES: u64 = 64 << 20;

/// A font file's bytes: a regular file of at most [`MAX_FONT_BYTES`] (`/dev/zero`
/// was read until memory ran out).
fn read_font(path: &std::path::Path) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| {
        format!(
            "cannot read the font: {}",
            crate::error::without_os_error_numbers(&e.to_string())
        )
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err("not a regular file; a font is a .ttf file".into());
    }
    if meta.len() > MAX_FONT_BYTES {
        return Err(format!(
            "{} bytes: larger than any font cxr reads ({} MiB)",
            meta.len(),
            MAX_FONT_BYTES >> 20
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FONT_BYTES)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    Ok(bytes)
}

/// `cxr plot boxes`: drawn into `out`, or its SQL printed.
async fn plot_boxes(cmd: &PlotCmd, out: Option<&std::path::Path>, size: (u32, u32)) -> Result<()> {
    let cohort = &cmd.common.cohort;
    if cohort.narrows() || !cohort.sources.is_empty() || cohort.uncertain.is_some() {
        return Err(Error::Usage(
            "plot boxes takes --dataset and --finding; the cohort flags do not apply".into(),
        ));
    }
    crate::cli::plot_boxes::run(
        &cmd.common.warehouse.path(),
        &cohort.datasets,
        cmd.finding.as_deref(),
        out,
        size,
    )
    .await
}

/// Flags of the analysis commands that a plot has no use for.
fn refuse_unused_flags(cmd: &PlotCmd) -> Result<()> {
    let unused = if cmd.common.output.format.is_some() {
        Some("--format")
    } else if cmd.common.output.max_rows.is_some() {
        Some("--max-rows")
    } else if cmd.metric.is_some() && cmd.kind != PlotKind::Cooccurrence {
        Some("--metric")
    } else {
        None
    };
    match unused {
        Some(flag) => Err(Error::Usage(format!(
            "{flag} does nothing for `cxr plot {}`; leave it out",
            cmd.kind
                .to_possible_value()
                .map_or("?".into(), |v| v.get_name().to_string())
        ))),
        None => Ok(()),
    }
}

/// Runs `cxr plot`.
pub async fn run(cmd: PlotCmd) -> Result<()> {
    let metric = cmd.metric.unwrap_or(Metric::Count);
    let kind = cmd.kind;
    let across = cmd.common.cohort.across_datasets();
    if cmd.common.show_sql {
        // The SQL of the plot's data, to run with `cxr sql` or elsewhere.
        refuse_unused_flags(&cmd)?;
        if kind == PlotKind::Boxes {
            return plot_boxes(&cmd, None, (0, 0)).await;
        }
        return cmd
            .common
            .run(|cohort, avail| data_sql(kind, metric, cohort, &avail.scope))
            .await;
    }
    let out = cmd
        .common
        .output
        .out
        .clone()
        .ok_or_else(|| Error::Usage("cxr plot needs --out FILE.svg or FILE.png".into()))?;
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext != "svg" && ext != "png" {
        return Err(Error::Usage(format!(
            "{}: plots are written as .svg or .png",
            out.display()
        )));
    }
    crate::warehouse::refuse_in_any_warehouse(&out, "--out")?;
    crate::warehouse::files::check_file_target(&out)?;
    refuse_unused_flags(&cmd)?;
    let size = parse_size(&cmd.size)?;
    let cohort = cmd.common.cohort.describe();
    register_font()?;
    if cmd.kind == PlotKind::Boxes {
        return plot_boxes(&cmd, Some(&out), size).await;
    }
    if cmd.finding.is_some() {
        return Err(Error::Usage(
            "--finding applies to `cxr plot boxes` only (cohorts take --with)".into(),
        ));
    }
    let rows = cmd
        .common
        .query(|cohort, avail| data_sql(kind, metric, cohort, &avail.scope))
        .await?;
    if kind == PlotKind::Pixels && rows.is_empty() {
        return Err(Error::Usage(
            "no pixel statistics for this cohort; run `cxr ingest --images ...`".into(),
        ));
    }
    let panels = Data::panels(kind, &rows, across, &cmd.common.cohort.datasets)?;
    // A dataset asked for with nothing to draw (no ages, fewer than two findings) is
    // said, not dropped silently.
    let drawn: Vec<&str> = panels.iter().map(|(d, _)| d.as_str()).collect();
    let missing: Vec<&str> = cmd
        .common
        .cohort
        .datasets
        .iter()
        .map(|d| d.trim())
        .filter(|d| across && !d.is_empty() && !drawn.contains(d))
        .collect();
    if !missing.is_empty() && !drawn.is_empty() && !rows.is_empty() {
        say!(
            "cxr: note: nothing to draw for {} in this plot (no {}); the other datasets are drawn",
            missing.join(", "),
            what_is_drawn(kind)
        );
    }
    if cmd.free_scales && panels.len() < 2 {
        return Err(Error::Usage(
            "--free-scales applies to the panels of several datasets (--dataset a,b); this plot has one"
                .into(),
        ));
    }
    if panels.iter().all(|(_, d)| d.is_empty()) {
        if cmd.common.matches_nothing().await? {
            return Err(Error::Usage(format!(
                "nothing to plot: {}",
                cmd.common.cohort.nothing_matches()
            )));
        }
        return Err(Error::Usage(format!(
            "nothing to plot: the cohort has no {} (check the cohort flags and datasets)",
            what_is_drawn(kind)
        )));
    }
    crate::output::write_image_atomic(&out, |tmp| {
        if ext == "svg" {
            draw(
                SVGBackend::new(tmp, size).into_drawing_area(),
                metric,
                &panels,
                &cohort,
                cmd.free_scales,
            )
        } else {
            draw(
                BitMapBackend::new(tmp, size).into_drawing_area(),
                metric,
                &panels,
                &cohort,
                cmd.free_scales,
            )
        }
    })?;
    say!("wrote {}", out.display());
    Ok(())
}

/// What a plot draws, as a note or an error names it.
fn what_is_drawn(kind: PlotKind) -> &'static str {
    match kind {
        PlotKind::Cooccurrence => "pair of findings that a dataset labels",
        PlotKind::Labels => "labelled findings",
        PlotKind::Age => "ages",
        PlotKind::Pixels => "pixel statistics",
        PlotKind::Boxes => "boxes",
    }
}

/// The SQL of a cohort plot's data over the cohort's query `cohort`: rows per
/// dataset (NIH's images alone without `--dataset`, drawn as one panel).
fn data_sql(
    kind: PlotKind,
    metric: Metric,
    cohort: &str,
    scope: &crate::cohort::across::Scope,
) -> Result<String> {
    Ok(match kind {
        PlotKind::Cooccurrence => crate::cli::cooccur::sql(
            cohort,
            scope,
            metric,
            crate::cli::cooccur::Thresholds::default(),
        ),
        PlotKind::Labels => format!(
            "WITH cohort AS (\n{cohort}\n)\nSELECT * FROM (\n{}\n) AS p ORDER BY dataset, CAST(n AS DOUBLE) / base DESC, label",
            crate::cohort::across::finding_counts_sql("cohort")
        ),
        PlotKind::Age => format!(
            "WITH cohort AS (\n{cohort}\n)\nSELECT dataset, COALESCE(sex, '?') AS sex, CAST(floor(age / 5) * 5 AS BIGINT) AS bin, COUNT(*) AS n FROM cohort WHERE age IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ),
        PlotKind::Boxes => {
            return Err(Error::Usage("boxes are plotted from dataset_boxes".into()));
        }
        // On the 8-bit scale at every depth (the 0–1 mean times 255; 8-bit means as
        // stored), so that datasets of 8-, 12- and 16-bit images share one axis.
        PlotKind::Pixels => format!(
            "WITH cohort AS (\n{cohort}\n)\nSELECT c.dataset, CAST(LEAST(floor(CASE WHEN p.bits_stored = 8 THEN p.mean ELSE p.mean_norm * 255 END / 8), 31) * 8 AS BIGINT) AS bin, COUNT(*) AS n FROM cohort c JOIN pixel_stats p ON p.dataset = c.dataset AND p.image_id = c.image_id GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    })
}

/// What a plot draws, typed.
enum Data {
    /// (finding a, finding b, value) per ordered pair.
    Pairs(Vec<(String, String, f64)>),
    /// (finding, images, images whose state is known) and the cohort's size.
    Labels(Vec<(String, f64, f64)>, f64),
    /// (sex, 5-year bin, images).
    Age(Vec<(String, f64, f64)>),
    /// (bin of 8 grey values, images).
    Pixels(Vec<(f64, f64)>),
}

impl Data {
    /// One plot per dataset (across datasets, in the order `asked` names them), or one
    /// for NIH's images (no `--dataset`) under the name "".
    fn panels(
        kind: PlotKind,
        rows: &crate::sql::Rows,
        across: bool,
        asked: &[String],
    ) -> Result<Vec<(String, Data)>> {
        if !across || rows.is_empty() {
            return Ok(vec![(String::new(), Data::from_rows(kind, rows)?)]);
        }
        let datasets = rows.required_strings("dataset")?;
        let mut names: Vec<String> = datasets.clone();
        names.sort();
        names.dedup();
        let position = |d: &String| asked.iter().position(|a| a == d).unwrap_or(asked.len());
        names.sort_by_key(position);
        names
            .into_iter()
            .map(|d| {
                let keep: Vec<usize> = (0..rows.len()).filter(|&r| datasets[r] == d).collect();
                Ok((d, Data::from_rows(kind, &rows.take(&keep)?)?))
            })
            .collect()
    }

    fn from_rows(kind: PlotKind, rows: &crate::sql::Rows) -> Result<Data> {
        Ok(match kind {
            PlotKind::Cooccurrence => Data::Pairs(
                rows.required_strings("label_a")?
                    .into_iter()
                    .zip(rows.required_strings("label_b")?)
                    .zip(rows.f64s("value")?)
                    .filter_map(|((a, b), v)| v.map(|v| (a, b, v)))
                    .collect(),
            ),
            PlotKind::Labels => {
                let total = rows.required_f64s("total")?.first().copied().unwrap_or(0.0);
                Data::Labels(
                    rows.required_strings("label")?
                        .into_iter()
                        .zip(rows.required_f64s("n")?)
                        .zip(rows.required_f64s("base")?)
                        .map(|((l, n), b)| (l, n, b))
                        .collect(),
                    total,
                )
            }
            PlotKind::Age => Data::Age(
                rows.required_strings("sex")?
                    .into_iter()
                    .zip(rows.required_f64s("bin")?)
                    .zip(rows.required_f64s("n")?)
                    .map(|((s, b), n)| (s, b, n))
                    .collect(),
            ),
            PlotKind::Boxes => {
                return Err(Error::Usage("boxes are plotted from dataset_boxes".into()));
            }
            PlotKind::Pixels => Data::Pixels(
                rows.required_f64s("bin")?
                    .into_iter()
                    .zip(rows.required_f64s("n")?)
                    .collect(),
            ),
        })
    }

    /// The ranges this panel's axes (or colour scale) need: (x, y). Pairs: the
    /// largest and the smallest positive value; labels: the largest percentage; age:
    /// the oldest bin's end and the largest count; pixels: 256 and the largest count.
    fn limits(&self) -> (f64, f64) {
        let largest = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0f64, f64::max);
        match self {
            Data::Pairs(p) => (
                largest(&mut p.iter().map(|r| r.2)),
                p.iter()
                    .map(|r| r.2)
                    .filter(|v| *v > 0.0)
                    .fold(f64::INFINITY, f64::min),
            ),
            Data::Labels(rows, _) => (
                largest(&mut rows.iter().map(|(_, n, base)| 100.0 * n / base.max(1.0))),
                0.0,
            ),
            Data::Age(a) => (
                largest(&mut a.iter().map(|r| r.1)) + 5.0,
                largest(&mut a.iter().map(|r| r.2)),
            ),
            Data::Pixels(p) => (256.0, largest(&mut p.iter().map(|r| r.1))),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Data::Pairs(p) => p.iter().all(|r| r.2 == 0.0),
            Data::Labels(_, total) => *total == 0.0,
            Data::Age(a) => a.is_empty(),
            Data::Pixels(p) => p.is_empty(),
        }
    }
}

/// Draws each panel in its cell of a grid (one cell for NIH), titled with its
/// dataset and the cohort.
fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    metric: Metric,
    panels: &[(String, Data)],
    cohort: &str,
    free_scales: bool,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    // Several datasets: the cohort heads the figure, each panel names its dataset.
    // One panel is titled with the cohort, which names its dataset.
    let (body, panel_titles) = if panels.len() > 1 {
        (root.titled(cohort, ("sans-serif", 22))?, true)
    } else {
        (root.clone(), false)
    };
    let cols = (panels.len() as f64).sqrt().ceil().max(1.0) as usize;
    let rows = panels.len().div_ceil(cols);
    let areas = body.split_evenly((rows, cols));
    // Shared scales: the widest ranges of all panels (for pairs the second limit is
    // the smallest positive value, so the smallest of the panels').
    let pairs = matches!(panels.first(), Some((_, Data::Pairs(_))));
    let shared = panels
        .iter()
        .map(|(_, d)| d.limits())
        .reduce(|(x, y), (px, py)| (x.max(px), if pairs { y.min(py) } else { y.max(py) }))
        .unwrap_or_default();
    // Labels are drawn in a size that fits every panel's smallest area.
    let labels_in = label_size(&areas[0]);
    // Heatmaps share their axes: the findings of every panel, so that a cell is at
    // the same place in each; a dataset's findings it does not label are grey.
    let mut axis: Vec<&str> = panels
        .iter()
        .flat_map(|(_, d)| match d {
            Data::Pairs(rows) => rows.iter().map(|r| r.0.as_str()).collect(),
            _ => Vec::new(),
        })
        .collect();
    axis.sort_unstable();
    axis.dedup();
    for ((dataset, data), area) in panels.iter().zip(&areas) {
        let title = if panel_titles {
            dataset.clone()
        } else {
            cohort.to_string()
        };
        let limits = if free_scales { data.limits() } else { shared };
        match data {
            Data::Pairs(rows) => heatmap(area, metric, rows, &axis, &title, limits, labels_in)?,
            Data::Labels(rows, total) => labels(area, rows, *total, &title, limits, labels_in)?,
            Data::Age(rows) => age(area, rows, &title, limits)?,
            Data::Pixels(rows) => pixels(area, rows, &title, limits)?,
        }
    }
    root.present()?;
    Ok(())
}

/// A caption's font size for an area: 24 on a full-size plot, smaller in a panel.
fn caption_size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> u32 {
    (area.dim_in_pixel().0 / 40).clamp(12, 24)
}

/// The font size of finding names in an area: 14 on a full-size plot, down to 9 in
/// small panels, so that the longest name ("Enlarged Cardiomediastinum") takes at
/// most a fifth of the area's width.
fn label_size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> u32 {
    // A name of 26 characters is about 13 × the font size wide in DejaVu Sans.
    (area.dim_in_pixel().0 / 5 / 13).clamp(9, 14)
}

/// The widest finding name of `names` in `font_size`, in pixels.
fn widest<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    names: &[&str],
    font_size: u32,
) -> i32 {
    let font = TextStyle::from(("sans-serif", font_size).into_font());
    names
        .iter()
        .filter_map(|n| area.estimate_text_size(&n.replace('_', " "), &font).ok())
        .map(|(w, _)| w as i32)
        .max()
        .unwrap_or(0)
}

/// Light yellow to dark blue.
fn shade(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(255.0, 8.0), lerp(247.0, 48.0), lerp(188.0, 107.0))
}

/// Blue below 0, near-white at 0, red above, for t in [-1, 1] (lift on a log scale,
/// centred on independence).
fn diverging(t: f64) -> RGBColor {
    let t = t.clamp(-1.0, 1.0);
    let end = if t < 0.0 {
        (33.0, 102.0, 172.0)
    } else {
        (178.0, 24.0, 43.0)
    };
    let lerp = |e: f64| (247.0 + (e - 247.0) * t.abs()).round() as u8;
    RGBColor(lerp(end.0), lerp(end.1), lerp(end.2))
}

/// How a heatmap maps values to colours: a linear scale from 0 to the largest value,
/// or for lift a log scale symmetric around 1 (lift 2 and 1/2 equally strong).
struct ColourScale {
    metric: Metric,
    /// Largest value (linear), or the largest ratio away from 1 (lift, at least 2).
    top: f64,
}

impl ColourScale {
    fn new(metric: Metric, (largest, smallest): (f64, f64)) -> ColourScale {
        let top = if metric == Metric::Lift {
            let below = if smallest.is_finite() && smallest > 0.0 {
                1.0 / smallest
            } else {
                1.0
            };
            largest.max(below).max(2.0)
        } else {
            largest.max(1e-12)
        };
        ColourScale { metric, top }
    }

    /// Position on the scale: 0..1 (linear) or -1..1 (lift).
    fn position(&self, v: f64) -> f64 {
        if self.metric == Metric::Lift {
            v.max(1e-12).ln() / self.top.ln()
        } else {
            v / self.top
        }
    }

    fn colour(&self, v: f64) -> RGBColor {
        if self.metric == Metric::Lift {
            diverging(self.position(v))
        } else {
            shade(self.position(v))
        }
    }

    /// White text on dark cells.
    fn ink(&self, v: f64) -> RGBColor {
        let dark = if self.metric == Metric::Lift {
            self.position(v).abs() > 0.6
        } else {
            self.position(v) > 0.55
        };
        if dark { WHITE } else { BLACK }
    }

    /// The colour at a fraction f (0 bottom, 1 top) of the scale bar.
    fn bar(&self, f: f64) -> RGBColor {
        if self.metric == Metric::Lift {
            diverging(2.0 * f - 1.0)
        } else {
            shade(f)
        }
    }

    /// The values the bar's bottom, middle and top stand for.
    fn ticks(&self) -> [f64; 3] {
        if self.metric == Metric::Lift {
            [1.0 / self.top, 1.0, self.top]
        } else {
            [0.0, self.top / 2.0, self.top]
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    metric: Metric,
    rows: &[(String, String, f64)],
    axis: &[&str],
    cohort: &str,
    limits: (f64, f64),
    label_font_size: u32,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let (w, h) = root.dim_in_pixel();
    let title = format!(
        "Finding co-occurrence ({}) — {cohort}",
        format!("{metric:?}").to_lowercase()
    );
    root.draw(&Text::new(
        title,
        (20, 12),
        ("sans-serif", caption_size(root)).into_font(),
    ))?;
    // The findings of every panel's pairs (the 14, or those the datasets label).
    let findings: Vec<&str> = if axis.is_empty() {
        FINDINGS.to_vec()
    } else {
        axis.to_vec()
    };
    // Room for the names: left of the rows and below the columns (rotated).
    let names = widest(root, &findings, label_font_size) + 12;
    let (left, top) = (names + 8, caption_size(root) as i32 + 30);
    let bottom_labels = names + 30;
    let k = findings.len() as i32;
    // The colour scale takes about 80 pixels on the right.
    let cell = (((w as i32 - left - 90).min(h as i32 - top - bottom_labels)) / k).max(10);
    let value = |a: &str, b: &str| rows.iter().find(|r| r.0 == a && r.1 == b).map(|r| r.2);
    let scale = ColourScale::new(metric, limits);
    let small = ("sans-serif", (cell / 3).clamp(7, 14)).into_font();
    let label_font = ("sans-serif", label_font_size).into_font();
    for (i, a) in findings.iter().enumerate() {
        let y = top + i as i32 * cell;
        root.draw(&Text::new(
            a.replace('_', " "),
            (left - 8, y + cell / 2),
            TextStyle::from(label_font.clone()).pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        for (j, b) in findings.iter().enumerate() {
            let x = left + j as i32 * cell;
            let v = if a == b { None } else { value(a, b) };
            let colour = v.map_or(RGBColor(230, 230, 230), |v| scale.colour(v));
            root.draw(&Rectangle::new(
                [(x, y), (x + cell - 1, y + cell - 1)],
                colour.filled(),
            ))?;
            if let Some(v) = v {
                let text = match metric {
                    Metric::Count => format!("{v:.0}"),
                    Metric::Lift => format!("{v:.1}"),
                    _ => format!("{v:.2}"),
                };
                let ink = scale.ink(v);
                root.draw(&Text::new(
                    text,
                    (x + cell / 2, y + cell / 2),
                    small
                        .clone()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
        }
    }
    let base = top + k * cell + 8;
    for (j, b) in findings.iter().enumerate() {
        let x = left + j as i32 * cell + cell / 2;
        root.draw(&Text::new(
            b.replace('_', " "),
            (x, base),
            TextStyle::from(label_font.clone().transform(FontTransform::Rotate270))
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    // The colour scale: its lowest value at the bottom, its highest at the top.
    let (bar_x, bar_h) = (left + k * cell + 20, k * cell);
    let steps = 50;
    for k in 0..steps {
        let y0 = top + bar_h - (k + 1) * bar_h / steps;
        let y1 = top + bar_h - k * bar_h / steps;
        root.draw(&Rectangle::new(
            [(bar_x, y0), (bar_x + 16, y1)],
            scale.bar((k as f64 + 0.5) / steps as f64).filled(),
        ))?;
    }
    root.draw(&Rectangle::new(
        [(bar_x, top), (bar_x + 16, top + bar_h)],
        BLACK.stroke_width(1),
    ))?;
    let scale_label = |v: f64| match metric {
        Metric::Count => format!("{v:.0}"),
        Metric::Lift => format!("{v:.2}"),
        _ => format!("{v:.2}"),
    };
    let [low, middle, high] = scale.ticks();
    for (v, y) in [(high, top), (middle, top + bar_h / 2), (low, top + bar_h)] {
        root.draw(&Text::new(
            scale_label(v),
            (bar_x + 20, y),
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    let note = match metric {
        Metric::Conditional => "rows: finding A, columns: finding B, cell: P(B | A)",
        Metric::Lift => "rows: finding A, columns: finding B; lift on a log scale, 1 = independent",
        _ => "rows: finding A, columns: finding B",
    };
    // Under the column names, in their size (a panel is narrower than the figure).
    root.draw(&Text::new(
        note,
        (left.min(20), (base + names + 8).min(h as i32 - 20)),
        ("sans-serif", label_font_size).into_font(),
    ))?;
    Ok(())
}

fn labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[(String, f64, f64)],
    total: f64,
    cohort: &str,
    limits: (f64, f64),
    label_font_size: u32,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let pct: Vec<(String, f64)> = rows
        .iter()
        .map(|(label, n, base)| (label.replace('_', " "), 100.0 * n / base.max(1.0)))
        .collect();
    let max = limits.0.max(1.0) * 1.1;
    let n = pct.len() as i32;
    let names: Vec<&str> = pct.iter().map(|p| p.0.as_str()).collect();
    let name_width = widest(root, &names, label_font_size) + 16;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Finding prevalence — {cohort} ({} images)", total as u64),
            ("sans-serif", caption_size(root)),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(name_width.max(40) as u32)
        // A range of one value (0..0) has no height: plotters then draws the only
        // bar without its name. One bar gets a second, empty row above it.
        .build_cartesian_2d(0f64..max, (0..(n - 1).max(1)).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(pct.len())
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => pct
                .get((n - 1 - *i) as usize)
                .map(|p| p.0.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("% of the images whose state is known")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", label_font_size + 1))
        .draw()?;
    chart.draw_series(pct.iter().enumerate().map(|(i, (_, v))| {
        let row = n - 1 - i as i32;
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(row)),
                (*v, SegmentValue::Exact(row + 1)),
            ],
            RGBColor(49, 130, 189).filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    Ok(())
}

fn age<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[(String, f64, f64)],
    cohort: &str,
    (max_age, max_n): (f64, f64),
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    // Headroom above the tallest bar keeps the legend (upper right) off the bars.
    let max_n = max_n.max(1.0) * 1.3;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Age by sex — {cohort}"),
            ("sans-serif", caption_size(root)),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_age.max(10.0), 0f64..max_n)?;
    chart
        .configure_mesh()
        .x_desc("age (years, 5-year bins)")
        .y_desc("images")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    // Images of unknown sex (OpenI's, say) are bars of their own, not left out.
    let mut series = vec![
        ("M", "male", RGBColor(49, 130, 189)),
        ("F", "female", RGBColor(222, 45, 38)),
    ];
    if rows.iter().any(|r| r.0 == "?") {
        series.push(("?", "sex unknown", RGBColor(150, 150, 150)));
    }
    // Each 5-year bin is shared by the series' bars side by side.
    let width = 5.0 / series.len() as f64;
    for (k, (sex, label, colour)) in series.into_iter().enumerate() {
        let offset = k as f64 * width;
        let bars: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.0 == sex)
            .map(|r| (r.1, r.2))
            .collect();
        chart
            .draw_series(bars.iter().map(move |(bin, n)| {
                Rectangle::new(
                    [(bin + offset, 0.0), (bin + offset + width - 0.1, *n)],
                    colour.filled(),
                )
            }))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font(("sans-serif", 16))
        .draw()?;
    Ok(())
}

fn pixels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[(f64, f64)],
    cohort: &str,
    (_, max_n): (f64, f64),
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let max_n = max_n.max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Per-image mean intensity — {cohort}"),
            ("sans-serif", caption_size(root)),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..256f64, 0f64..max_n)?;
    chart
        .configure_mesh()
        .x_desc("mean grey value, 0–255 scale (bins of 8)")
        .y_desc("images")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    chart.draw_series(rows.iter().map(|&(bin, n)| {
        Rectangle::new(
            [(bin + 0.5, 0.0), (bin + 7.5, n)],
            RGBColor(99, 99, 99).filled(),
        )
    }))?;
    Ok(())
}
