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
    /// source that labels it, and not uncertain under U-Ignore). The age quartiles
    /// and median are nearest-rank values, each an age some image has: for an even
    /// count, the median is the lower of the two middle ages (57 of 57 and 58), not
    /// their mean. `patients` is empty for a dataset without patient ids (VinDr,
    /// RSNA, SIIM).
    #[arg(long)]
    pub summary: bool,
}

/// The SQL of `cxr cohort`, from the cohort's query and its scope: the rows, or
/// the summary per dataset. Without `--dataset` (NIH's images with NIH's column
/// names) the rows show NIH's columns and the summary no `dataset` column.
pub fn sql(cohort: &str, summary: bool, scope: &crate::cohort::across::Scope) -> String {
    if !summary {
        let (columns, order) = if scope.nih_columns {
            (
                "image_index, patient_id, follow_up, age, sex, view_position, labels, split",
                "patient_id, follow_up, image_index",
            )
        } else {
            (
                "dataset, image_id, patient_id, study_id, age, sex, \"view\", labels, split",
                "dataset, patient_id, study_order, study_id, image_id",
            )
        };
        return format!(
            "WITH cohort AS (\n{cohort}\n)\nSELECT {columns}\nFROM cohort\nORDER BY {order}"
        );
    }
    let per_dataset = summary_sql(cohort);
    if scope.nih_columns {
        format!(
            "SELECT measure, item, n, pct, denominator FROM (\n{per_dataset}\n) AS summary\nORDER BY part, n DESC, item"
        )
    } else {
        format!(
            "SELECT * EXCEPT (part) FROM (\n{per_dataset}\n) AS summary\nORDER BY dataset, part, n DESC, item"
        )
    }
}

/// Per dataset: images, patients, sex, view, age quartiles and each finding's
/// share, with `part` (the order of the measures). A finding's share is of the
/// images whose state is known (the dataset labels it and, under U-Ignore, the label
/// is not uncertain).
fn summary_sql(cohort: &str) -> String {
    format!(
        "WITH cohort AS (\n{cohort}\n),
ages AS (
    -- Each age once, with the rank of its last image (r) and the dataset's count (n):
    -- the quartiles below are the smallest ages whose rank reaches n/4, n/2, 3n/4, as
    -- over every image, from a few hundred rows instead of a sort of them all.
    SELECT dataset, age, SUM(k) OVER (PARTITION BY dataset ORDER BY age) AS r,
           SUM(k) OVER (PARTITION BY dataset) AS n
    FROM (SELECT dataset, age, COUNT(*) AS k FROM cohort WHERE age IS NOT NULL GROUP BY dataset, age) AS counted
),
rows AS (
    SELECT dataset, 1 AS part, 'images' AS measure, '' AS item, COUNT(*) AS n, CAST(NULL AS BIGINT) AS base FROM cohort GROUP BY dataset
    UNION ALL SELECT dataset, 2, 'patients', '', NULLIF(COUNT(DISTINCT patient_id), 0), NULL FROM cohort GROUP BY dataset
    UNION ALL SELECT dataset, 3, 'sex', COALESCE(sex, 'NULL'), COUNT(*), NULL FROM cohort GROUP BY dataset, sex
    UNION ALL SELECT dataset, 4, 'view', COALESCE(\"view\", 'NULL'), COUNT(*), NULL FROM cohort GROUP BY dataset, \"view\"
    UNION ALL SELECT a.dataset, q.part, 'age', q.item,
           CAST(CASE q.part WHEN 5 THEN a.lo WHEN 6 THEN a.q1 WHEN 7 THEN a.median WHEN 8 THEN a.q3 ELSE a.hi END AS BIGINT), NULL
    FROM (
        SELECT dataset, MIN(age) AS lo, MIN(CASE WHEN r * 4 >= n THEN age END) AS q1,
               MIN(CASE WHEN r * 2 >= n THEN age END) AS median,
               MIN(CASE WHEN r * 4 >= n * 3 THEN age END) AS q3, MAX(age) AS hi
        FROM ages GROUP BY dataset
    ) AS a CROSS JOIN (VALUES (5, 'min'), (6, 'q1'), (7, 'median'), (8, 'q3'), (9, 'max')) AS q(part, item)
    UNION ALL SELECT dataset, 10, 'finding', label, n, base FROM (
{findings}
    ) AS fc
    UNION ALL SELECT dataset, 11, 'finding', 'No Finding', SUM(CASE WHEN no_finding THEN 1 ELSE 0 END), COUNT(no_finding) FROM cohort GROUP BY dataset HAVING COUNT(no_finding) > 0
),
total AS (SELECT dataset, COUNT(*) AS total_n FROM cohort GROUP BY dataset)
SELECT r.dataset, part, measure, item, n,
       CASE WHEN part IN (3, 4) THEN round(100.0 * n / NULLIF(total_n, 0), 2)
            WHEN part IN (10, 11) THEN round(100.0 * n / NULLIF(base, 0), 2) END AS pct,
       CASE WHEN part IN (3, 4) THEN total_n WHEN part IN (10, 11) THEN base END AS denominator
FROM rows r JOIN total t ON t.dataset = r.dataset",
        findings = crate::cohort::across::finding_counts_sql("cohort")
    )
}

/// The columns of a cohort's rows that its summary, co-occurrence and counts read
/// (no paths or lists): computed once, they are read a dozen times.
pub fn summary_rows_sql(cohort: &str) -> String {
    format!(
        "SELECT dataset, patient_id, study_id, sex, \"view\", age, no_finding, positive_mask, known_mask FROM (\n{cohort}\n) AS c"
    )
}

/// Runs `cxr cohort`.
pub async fn run(args: CohortCmd) -> Result<()> {
    let summary = args.summary;
    if summary && !args.common.show_sql {
        // The summary reads the cohort's rows a dozen times: they are computed once.
        return args
            .common
            .run_staged(
                "summary_rows",
                |cohort, _| Ok(summary_rows_sql(cohort)),
                |avail| Ok(sql("SELECT * FROM summary_rows", true, &avail.scope)),
            )
            .await;
    }
    args.common
        .run(|cohort, avail| Ok(sql(cohort, summary, &avail.scope)))
        .await
}
