//! `cxr cooccur`: the 14 × 14 co-occurrence matrix of a cohort.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use comfy_table::Table;

use crate::cli::AnalysisArgs;
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
    #[arg(long, value_enum, default_value_t = Metric::Count)]
    pub metric: Metric,
}

/// The long-form SQL: one row per ordered pair with the chosen metric as `value`.
/// `cohort` is `None` for the whole warehouse: the pairs are then read from
/// `cooccurrence` (materialised at ingest).
pub fn sql(cohort: Option<&str>, metric: Metric) -> String {
    let Some(cohort) = cohort else {
        return format!(
            "SELECT label_a, label_b, n_a, n_b, n_ab, {} AS value\nFROM cooccurrence\nORDER BY label_a, label_b",
            metric.expr()
        );
    };
    let pairs = crate::sql::view_sql("cooccurrence", "cohort", "findings");
    format!(
        "WITH cohort AS (\n{cohort}\n),\npairs AS (\n{pairs}\n)\nSELECT label_a, label_b, n_a, n_b, n_ab, {} AS value\nFROM pairs\nORDER BY label_a, label_b",
        metric.expr()
    )
}

/// Runs `cxr cooccur`: a matrix on a terminal, the long form otherwise.
pub async fn run(args: CooccurCmd) -> Result<()> {
    let metric = args.metric;
    let global = args.common.cohort.is_empty();
    let matrix = args.common.output.out.is_none()
        && !args.common.show_sql
        && match args.common.output.format {
            Some(f) => f == Format::Table,
            None => std::io::stdout().is_terminal(),
        };
    if !matrix {
        return args
            .common
            .run(|c| Ok(sql((!global).then_some(c), metric)))
            .await;
    }
    let rows = args
        .common
        .query(|c| Ok(sql((!global).then_some(c), metric)))
        .await?;
    crate::output::print_text(&matrix_table(&rows, metric)?.to_string())
}

/// Pivots long-form rows (label_a, label_b, n_a, n_b, n_ab, value) into a table.
fn matrix_table(rows: &crate::sql::Rows, metric: Metric) -> crate::Result<Table> {
    let a_col = rows.required_strings("label_a")?;
    let b_col = rows.required_strings("label_b")?;
    let n_a = rows.required_i64s("n_a")?;
    let value = rows.f64s("value")?;
    let mut header = vec!["row \\ column".to_string()];
    header.extend(FINDINGS.iter().map(|f| f.to_string()));
    let mut t = crate::output::text_table(header);
    for a in FINDINGS {
        let mut line = vec![a.to_string()];
        for b in FINDINGS {
            let cell = if a == b {
                match (metric, a_col.iter().position(|x| x == a)) {
                    (Metric::Count, Some(r)) => n_a[r].to_string(),
                    (Metric::Count, None) => "0".into(),
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
        t.add_row(line);
    }
    Ok(t)
}

fn format_value(x: f64, metric: Metric) -> String {
    match metric {
        Metric::Count => format!("{x:.0}"),
        Metric::Lift => format!("{x:.2}"),
        _ => format!("{x:.3}"),
    }
}
