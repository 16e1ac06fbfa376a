//! `cxr cooccur`: the finding co-occurrence matrix of a cohort (14 × 14 for NIH, 18 × 18 across datasets).

use std::io::IsTerminal;

use clap::{Args, ValueEnum};

use crate::cli::AnalysisArgs;
use crate::cohort::across::Scope;
use crate::error::Result;
use crate::findings::FINDINGS;
use crate::output::Format;

/// The value shown in each cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Images with both findings.
    Count,
    /// P(column | row) = n_ab / n_a.
    Conditional,
    /// n_ab / (n_a + n_b − n_ab).
    Jaccard,
    /// n_ab · N / (n_a · n_b).
    Lift,
}

impl Metric {
    /// The column a printed result gives the metric (none for counts: `n_ab` is it).
    fn column(self) -> Option<&'static str> {
        match self {
            Metric::Count => None,
            Metric::Conditional => Some("p_b_given_a"),
            Metric::Jaccard => Some("jaccard"),
            Metric::Lift => Some("lift"),
        }
    }

    fn expr(self) -> &'static str {
        match self {
            Metric::Count => "CAST(n_ab AS DOUBLE)",
            Metric::Conditional => "p_b_given_a",
            Metric::Jaccard => "jaccard",
            Metric::Lift => "lift",
        }
    }
}

/// Arguments of `cxr cooccur`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  cxr cooccur --metric lift --view PA")]
pub struct CooccurCmd {
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// The value in each cell.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Metric::Count)]
    pub metric: Metric,
    /// Keep only pairs with a lift of at least X.
    #[arg(long, value_name = "X")]
    pub min_lift: Option<f64>,
    /// Keep only pairs seen together in at least N images.
    #[arg(long, value_name = "N")]
    pub min_count: Option<u64>,
}

/// Pair thresholds (`--min-lift`, `--min-count`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    /// Smallest lift kept.
    pub min_lift: Option<f64>,
    /// Smallest n_ab kept.
    pub min_count: Option<u64>,
}

impl Thresholds {
    fn predicate(self) -> String {
        let mut p = Vec::new();
        if let Some(x) = self.min_lift {
            p.push(format!("lift >= {x:?}"));
        }
        if let Some(n) = self.min_count {
            p.push(format!("n_ab >= {n}"));
        }
        if p.is_empty() {
            String::new()
        } else {
            format!("\nWHERE {}", p.join(" AND "))
        }
    }
}

/// The long-form SQL across datasets: per dataset, one row per ordered pair of two
/// findings the dataset labels. Each image's positive findings are an 18-bit mask,
/// as in the `cooccurrence` view, counted in one pass per dataset by
/// `finding_pair_counts` (an 18 × 18 table, each finding alone on the diagonal); a
/// second mask marks the findings whose state is known, and their union over a
/// dataset is what the dataset labels.
pub fn sql(cohort: &str, scope: &Scope, metric: Metric, keep: Thresholds) -> String {
    let width = crate::datasets::XR_FINDINGS.len();
    format!(
        "WITH cohort AS (\n{cohort}\n),
{findings},
counted AS (
    SELECT dataset, finding_pair_counts({positive}) AS counts,
           CAST(COUNT(*) AS DOUBLE) AS total, bit_or({known}) AS known
    FROM cohort
    GROUP BY dataset
),
counts AS (
    SELECT c.dataset, a.label AS label_a, b.label AS label_b,
           c.counts[a.k * {width} + a.k + 1] AS n_a,
           c.counts[b.k * {width} + b.k + 1] AS n_b,
           c.counts[a.k * {width} + b.k + 1] AS n_ab,
           c.total, c.known, a.bit AS bit_a, b.bit AS bit_b
    FROM counted c CROSS JOIN finding a JOIN finding b ON a.bit <> b.bit
),
pairs AS (
    SELECT dataset, label_a, label_b, n_a, n_b, n_ab,
           CAST(n_ab AS DOUBLE) / NULLIF(n_a, 0) AS p_b_given_a,
           CAST(n_ab AS DOUBLE) / NULLIF(n_a + n_b - n_ab, 0) AS jaccard,
           CAST(n_ab AS DOUBLE) * total / NULLIF(CAST(n_a AS DOUBLE) * n_b, 0) AS lift
    FROM counts
    WHERE (known & bit_a) <> 0 AND (known & bit_b) <> 0
)
SELECT dataset, label_a, label_b, n_a, n_b, n_ab, {value} AS value
FROM pairs{keep}
ORDER BY dataset, label_a, label_b",
        // Only the pairs the scope can have.
        findings = findings_cte(scope.findings()),
        positive = crate::cohort::across::positive_mask(false),
        known = crate::cohort::across::positive_mask(true),
        value = metric.expr(),
        keep = keep.predicate()
    )
}

/// `finding(label, bit, k) AS (VALUES ('Atelectasis', 1, 0), ...)`: the findings
/// with their bit in a mask and their place k in `XR_FINDINGS` (bit = 2^k).
fn findings_cte(findings: &[&str]) -> String {
    let rows: Vec<String> = crate::datasets::XR_FINDINGS
        .iter()
        .enumerate()
        .filter(|(_, f)| findings.contains(f))
        .map(|(k, f)| format!("({}, {}, {k})", crate::sql::snippets::quote(f), 1u32 << k))
        .collect();
    format!("finding(label, bit, k) AS (VALUES {})", rows.join(", "))
}

/// The long form as printed: the metric's own column name, rounded to 4 decimals
/// (`value` is the name the matrix and the plot read).
fn printed(sql: String, metric: Metric, scope: &crate::cohort::across::Scope) -> String {
    let value = metric
        .column()
        .map(|c| format!(", round(value, 4) AS {c}"))
        .unwrap_or_default();
    let dataset = if scope.nih_columns { "" } else { "dataset, " };
    format!(
        "SELECT {dataset}label_a, label_b, n_a, n_b, n_ab{value}\nFROM (\n{sql}\n) AS pairs\nORDER BY {dataset}label_a, label_b"
    )
}

/// Runs `cxr cooccur`: a matrix on a terminal when it fits its width (abbreviated
/// finding names and a key), the long form otherwise.
pub async fn run(args: CooccurCmd) -> Result<()> {
    let metric = args.metric;
    if let Some(x) = args.min_lift
        && !x.is_finite()
    {
        return Err(crate::error::Error::Usage(format!(
            "--min-lift {x}: expected a finite number"
        )));
    }
    let keep = Thresholds {
        min_lift: args.min_lift,
        min_count: args.min_count,
    };
    let long_form = |c: &str, avail: &crate::cohort::Available| {
        Ok(printed(
            sql(c, &avail.scope, metric, keep),
            metric,
            &avail.scope,
        ))
    };
    // NIH's 14 findings fit a compact matrix on a terminal; across datasets (18
    // findings, several datasets) and everywhere else the long form is printed.
    let table = match args.common.output.format {
        Some(f) => f == Format::Table,
        None => std::io::stdout().is_terminal(),
    };
    let nih = !args.common.cohort.across_datasets();
    let matrix = nih
        && args.common.output.out.is_none()
        && args.common.output.max_rows.is_none()
        && !args.common.show_sql
        && table;
    if nih && table && args.common.output.max_rows.is_some() && !args.common.show_sql {
        say!(
            "cxr: note: --max-rows cuts rows, so the pairs are printed one per row, not as the matrix"
        );
    }
    if !matrix {
        return args.common.run(long_form).await;
    }
    let rows = args
        .common
        .query(|c, avail| Ok(sql(c, &avail.scope, metric, keep)))
        .await?;
    if rows.is_empty() {
        // No pair to draw: the header and the note of an empty cohort.
        return args.common.run(long_form).await;
    }
    let width = crate::output::terminal_width().unwrap_or(80);
    let compact = compact_matrix(&rows, metric)?;
    if compact.lines().all(|l| l.chars().count() <= width) {
        return crate::output::print_text(compact.trim_end());
    }
    let mut out = args.common;
    out.output.format = Some(Format::Table);
    say!(
        "cxr: note: the 14 × 14 matrix of {} does not fit {width} columns; printing one row per pair",
        metric_name(metric)
    );
    out.run(long_form).await
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Count => "counts",
        Metric::Conditional => "P(column | row)",
        Metric::Jaccard => "Jaccard indices",
        Metric::Lift => "lifts",
    }
}

/// Two-letter codes of the findings, in [`FINDINGS`] order.
pub const CODES: [&str; 14] = [
    "At", "Ca", "Co", "Ed", "Ef", "Em", "Fi", "He", "In", "Ma", "Nd", "PT", "Pn", "Px",
];

/// The matrix as plain text: codes as headers, right-aligned cells, then the key.
fn compact_matrix(rows: &crate::sql::Rows, metric: Metric) -> crate::Result<String> {
    let cells = cells(rows, metric)?;
    let width = cells
        .iter()
        .flatten()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1)
        .max(2);
    let mut out = format!("{:<3}", "");
    for code in CODES {
        out.push_str(&format!(" {code:>width$}"));
    }
    out.push('\n');
    for (i, line) in cells.iter().enumerate() {
        out.push_str(&format!("{:<3}", CODES[i]));
        for c in line {
            out.push_str(&format!(" {c:>width$}"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\n{} (row finding, column finding); key:\n",
        metric_name(metric)
    ));
    let keys: Vec<String> = CODES
        .iter()
        .zip(FINDINGS)
        .map(|(c, f)| format!("{c} {f}"))
        .collect();
    for chunk in keys.chunks(4) {
        out.push_str(&format!("  {}\n", chunk.join(", ")));
    }
    Ok(out)
}

/// The cell texts of the matrix, row by row.
fn cells(rows: &crate::sql::Rows, metric: Metric) -> crate::Result<Vec<Vec<String>>> {
    let a_col = rows.required_strings("label_a")?;
    let b_col = rows.required_strings("label_b")?;
    let n_a = rows.required_i64s("n_a")?;
    let value = rows.f64s("value")?;
    let mut out = Vec::new();
    for a in FINDINGS {
        let mut line = Vec::new();
        for b in FINDINGS {
            let cell = if a == b {
                match (metric, a_col.iter().position(|x| x == a)) {
                    (Metric::Count, Some(r)) => n_a[r].to_string(),
                    (Metric::Count, None) => "·".into(),
                    _ => "·".into(),
                }
            } else {
                (0..rows.len())
                    .find(|&r| a_col[r] == a && b_col[r] == b)
                    .and_then(|r| value[r])
                    .map(|x| format_value(x, metric))
                    .unwrap_or_default()
            };
            line.push(cell);
        }
        out.push(line);
    }
    Ok(out)
}

fn format_value(x: f64, metric: Metric) -> String {
    match metric {
        Metric::Count => format!("{x:.0}"),
        Metric::Lift => format!("{x:.1}"),
        // Two decimals, without the leading zero, to fit 80 columns: .30
        _ => format!("{x:.2}").trim_start_matches('0').to_string(),
    }
}
