//! `cxr cohort`: the images of a cohort, or a summary of it.

use clap::Args;

use crate::cli::AnalysisArgs;
use crate::error::Result;

/// Arguments of `cxr cohort`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cxr cohort --with Effusion --without Pneumothorax --sex F --age 40..60 --view PA --summary"
)]
pub struct CohortCmd {
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// Print images, patients, sex and view breakdown, age quartiles and the
    /// prevalence of each finding instead of the images. Every share (`pct`) has its
    /// `denominator` beside it: all images of the cohort for sex and view; for a
    /// finding, the images whose state is known (across datasets: labelled by a
    /// source that labels it, and not uncertain under U-Ignore).
    #[arg(long)]
    pub summary: bool,
}

/// The SQL of `cxr cohort`, from the cohort's `images` query.
pub fn sql(cohort: &str, summary: bool) -> String {
    if !summary {
        return format!(
            "WITH cohort AS (\n{cohort}\n)\nSELECT image_index, patient_id, follow_up, age, sex, view_position, labels, split\nFROM cohort\nORDER BY patient_id, follow_up, image_index"
        );
    }
    format!(
        "WITH cohort AS (\n{cohort}\n),
total AS (SELECT COUNT(*) AS total_n FROM cohort),
{findings},
ages AS (
    SELECT age, ROW_NUMBER() OVER (ORDER BY age) AS r, COUNT(*) OVER () AS n
    FROM cohort WHERE age IS NOT NULL
),
rows AS (
    SELECT 1 AS part, 'images' AS measure, '' AS item, COUNT(*) AS n FROM cohort
    UNION ALL SELECT 2, 'patients', '', COUNT(DISTINCT patient_id) FROM cohort
    UNION ALL SELECT 3, 'sex', COALESCE(sex, 'NULL'), COUNT(*) FROM cohort GROUP BY sex
    UNION ALL SELECT 4, 'view', COALESCE(view_position, 'NULL'), COUNT(*) FROM cohort GROUP BY view_position
    UNION ALL SELECT 5, 'age', 'min', MIN(age) FROM ages
    UNION ALL SELECT 6, 'age', 'q1', MIN(CASE WHEN r * 4 >= n THEN age END) FROM ages
    UNION ALL SELECT 7, 'age', 'median', MIN(CASE WHEN r * 2 >= n THEN age END) FROM ages
    UNION ALL SELECT 8, 'age', 'q3', MIN(CASE WHEN r * 4 >= n * 3 THEN age END) FROM ages
    UNION ALL SELECT 9, 'age', 'max', MAX(age) FROM ages
    UNION ALL SELECT 10, 'finding', f.label, COUNT(c.image_index)
        FROM finding f LEFT JOIN cohort c ON array_has(c.labels, f.label) GROUP BY f.label
    UNION ALL SELECT 11, 'finding', 'No Finding', COUNT(*) FROM cohort WHERE no_finding
)
SELECT measure, item, n,
       CASE WHEN part IN (3, 4, 10, 11) THEN round(100.0 * n / NULLIF(total_n, 0), 2) END AS pct,
       CASE WHEN part IN (3, 4, 10, 11) THEN total_n END AS denominator
FROM rows CROSS JOIN total
ORDER BY part, n DESC, item",
        findings = crate::sql::snippets::findings_cte()
    )
}

/// The SQL of `cxr cohort --dataset ...`, from the cross-dataset cohort's query.
pub fn across_sql(cohort: &str, summary: bool) -> String {
    if !summary {
        return format!(
            "WITH cohort AS (\n{cohort}\n)\nSELECT dataset, image_id, patient_id, study_id, age, sex, \"view\", labels, split\nFROM cohort\nORDER BY dataset, patient_id, study_order, study_id, image_id"
        );
    }
    // Per dataset; a finding's share is of the images whose state is known (the
    // dataset labels it and, under U-Ignore, the label is not uncertain).
    format!(
        "WITH cohort AS (\n{cohort}\n),
ages AS (
    SELECT dataset, age, ROW_NUMBER() OVER (PARTITION BY dataset ORDER BY age) AS r,
           COUNT(*) OVER (PARTITION BY dataset) AS n
    FROM cohort WHERE age IS NOT NULL
),
rows AS (
    SELECT dataset, 1 AS part, 'images' AS measure, '' AS item, COUNT(*) AS n, CAST(NULL AS BIGINT) AS base FROM cohort GROUP BY dataset
    UNION ALL SELECT dataset, 2, 'patients', '', NULLIF(COUNT(DISTINCT patient_id), 0), NULL FROM cohort GROUP BY dataset
    UNION ALL SELECT dataset, 3, 'sex', COALESCE(sex, 'NULL'), COUNT(*), NULL FROM cohort GROUP BY dataset, sex
    UNION ALL SELECT dataset, 4, 'view', COALESCE(\"view\", 'NULL'), COUNT(*), NULL FROM cohort GROUP BY dataset, \"view\"
    UNION ALL SELECT dataset, 5, 'age', 'min', CAST(MIN(age) AS BIGINT), NULL FROM ages GROUP BY dataset
    UNION ALL SELECT dataset, 6, 'age', 'q1', CAST(MIN(CASE WHEN r * 4 >= n THEN age END) AS BIGINT), NULL FROM ages GROUP BY dataset
    UNION ALL SELECT dataset, 7, 'age', 'median', CAST(MIN(CASE WHEN r * 2 >= n THEN age END) AS BIGINT), NULL FROM ages GROUP BY dataset
    UNION ALL SELECT dataset, 8, 'age', 'q3', CAST(MIN(CASE WHEN r * 4 >= n * 3 THEN age END) AS BIGINT), NULL FROM ages GROUP BY dataset
    UNION ALL SELECT dataset, 9, 'age', 'max', CAST(MAX(age) AS BIGINT), NULL FROM ages GROUP BY dataset
    UNION ALL SELECT dataset, 10, 'finding', label, n, base FROM (
{findings}
    ) AS fc
    UNION ALL SELECT dataset, 11, 'finding', 'No Finding', SUM(CASE WHEN no_finding THEN 1 ELSE 0 END), COUNT(no_finding) FROM cohort GROUP BY dataset HAVING COUNT(no_finding) > 0
),
total AS (SELECT dataset, COUNT(*) AS total_n FROM cohort GROUP BY dataset)
SELECT r.dataset, measure, item, n,
       CASE WHEN part IN (3, 4) THEN round(100.0 * n / NULLIF(total_n, 0), 2)
            WHEN part IN (10, 11) THEN round(100.0 * n / NULLIF(base, 0), 2) END AS pct,
       CASE WHEN part IN (3, 4) THEN total_n WHEN part IN (10, 11) THEN base END AS denominator
FROM rows r JOIN total t ON t.dataset = r.dataset
ORDER BY r.dataset, part, n DESC, item",
        findings = crate::cohort::across::finding_counts_sql("cohort")
    )
}

/// The columns of a cross-dataset cohort's rows that its summary, co-occurrence and
/// counts read (no paths or lists): computed once, they are read a dozen times.
pub fn summary_rows_sql(cohort: &str) -> String {
    let findings: Vec<String> = crate::datasets::XR_FINDINGS
        .iter()
        .map(|f| crate::sql::snippets::column_name(f))
        .collect();
    format!(
        "SELECT dataset, patient_id, study_id, sex, \"view\", age, no_finding, {} FROM (\n{cohort}\n) AS c",
        findings.join(", ")
    )
}

/// Runs `cxr cohort`.
pub async fn run(args: CohortCmd) -> Result<()> {
    let summary = args.summary;
    let across = args.common.cohort.across_datasets();
    if across && summary && !args.common.show_sql {
        // The summary reads the cohort's rows a dozen times: they are computed once.
        return args
            .common
            .run_staged(
                "summary_rows",
                |cohort, _| Ok(summary_rows_sql(cohort)),
                || Ok(across_sql("SELECT * FROM summary_rows", true)),
            )
            .await;
    }
    args.common
        .run(|cohort, _| {
            Ok(if across {
                across_sql(cohort, summary)
            } else {
                sql(cohort, summary)
            })
        })
        .await
}
