//! `cxr followup`: one patient's timeline, per-finding longitudinal statistics, or
//! transition counts between consecutive studies.

use clap::Args;

use crate::cli::AnalysisArgs;
use crate::error::Result;

/// Arguments of `cxr followup`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  cxr followup --patient 18404\n  cxr followup --transitions")]
pub struct FollowupCmd {
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// Show this patient's timeline, one row per study.
    #[arg(long, value_name = "ID", conflicts_with = "transitions")]
    pub patient: Option<i64>,
    /// Count findings appearing and resolving between consecutive studies.
    #[arg(long)]
    pub transitions: bool,
}

fn findings_values() -> String {
    crate::sql::snippets::findings_cte()
}

/// The cohort flags select patients: every image of a patient with at least one
/// image in the cohort, so that each timeline is complete. `cohort` is `None` for the
/// whole warehouse: `fu` then reads `followups` (materialised at ingest).
fn with_followups(cohort: Option<&str>) -> String {
    let Some(cohort) = cohort else {
        return "WITH timeline AS (SELECT * FROM images),\nfu AS (SELECT * FROM followups)"
            .to_string();
    };
    let fu = crate::sql::view_sql("followups", "timeline", "findings");
    format!(
        "WITH cohort AS (\n{cohort}\n),\ntimeline AS (\n    SELECT t.* FROM images t JOIN (SELECT DISTINCT patient_id FROM cohort) AS cp ON cp.patient_id = t.patient_id\n),\nfu AS (\n{fu}\n)"
    )
}

/// The timeline of one patient.
pub fn timeline_sql(cohort: Option<&str>, patient: i64) -> String {
    format!(
        "{},\nstudies AS (SELECT fu.*, t.view_position FROM fu JOIN timeline t ON t.image_index = fu.image_index)\nSELECT study_rank, image_index, follow_up, age, view_position, labels, new_labels, resolved_labels\nFROM studies WHERE patient_id = {patient}\nORDER BY study_rank",
        with_followups(cohort)
    )
}

/// Appearances and resolutions per finding between consecutive studies.
pub fn transitions_sql(cohort: Option<&str>) -> String {
    format!(
        "{},\n{},
appeared AS (SELECT label, COUNT(*) AS n FROM (SELECT unnest(new_labels) AS label FROM fu WHERE new_labels IS NOT NULL) AS a GROUP BY label),
resolved AS (SELECT label, COUNT(*) AS n FROM (SELECT unnest(resolved_labels) AS label FROM fu WHERE resolved_labels IS NOT NULL) AS r GROUP BY label)
SELECT f.label,
       COALESCE(a.n, 0) AS appeared,
       COALESCE(r.n, 0) AS resolved
FROM finding f
LEFT JOIN appeared a ON a.label = f.label
LEFT JOIN resolved r ON r.label = f.label
ORDER BY appeared DESC, f.label",
        with_followups(cohort),
        findings_values()
    )
}

/// Per finding, over patients with at least two studies: ever positive, positive at
/// the first study, incident, median studies before the first appearance (incident
/// patients), and persistence (share of positive studies whose next is positive).
///
/// Computed from the positive studies only (the labels unnested) and from
/// `prev_labels` / `resolved_labels`: a positive study followed by another is a
/// previous study's label; it stays positive unless it is resolved.
pub fn summary_sql(cohort: Option<&str>) -> String {
    format!(
        "{},\n{},
multi AS (SELECT patient_id FROM fu WHERE study_rank = 2),
n_multi AS (SELECT COUNT(*) AS n FROM multi),
pos AS (
    SELECT fu.patient_id, fu.study_rank, unnest(fu.labels) AS label
    FROM fu JOIN multi m ON m.patient_id = fu.patient_id
),
by_patient AS (
    SELECT label, patient_id, MIN(study_rank) AS first_rank
    FROM pos GROUP BY label, patient_id
),
per_label AS (
    SELECT label,
           COUNT(*) AS ever_positive,
           SUM(CASE WHEN first_rank = 1 THEN 1 ELSE 0 END) AS positive_at_first,
           SUM(CASE WHEN first_rank > 1 THEN 1 ELSE 0 END) AS incident,
           median(CASE WHEN first_rank > 1 THEN first_rank - 1 END) AS median_studies_before_first
    FROM by_patient GROUP BY label
),
followed AS (SELECT label, COUNT(*) AS n FROM (SELECT unnest(prev_labels) AS label FROM fu WHERE prev_labels IS NOT NULL) AS x GROUP BY label),
dropped AS (SELECT label, COUNT(*) AS n FROM (SELECT unnest(resolved_labels) AS label FROM fu WHERE resolved_labels IS NOT NULL) AS x GROUP BY label)
SELECT f.label,
       nm.n AS patients,
       COALESCE(b.ever_positive, 0) AS ever_positive,
       COALESCE(b.positive_at_first, 0) AS positive_at_first,
       COALESCE(b.incident, 0) AS incident,
       b.median_studies_before_first,
       round(CAST(COALESCE(fo.n, 0) - COALESCE(d.n, 0) AS DOUBLE) / NULLIF(COALESCE(fo.n, 0), 0), 4) AS persistence
FROM finding f
CROSS JOIN n_multi nm
LEFT JOIN per_label b ON b.label = f.label
LEFT JOIN followed fo ON fo.label = f.label
LEFT JOIN dropped d ON d.label = f.label
WHERE nm.n > 0
ORDER BY ever_positive DESC, f.label",
        with_followups(cohort),
        findings_values()
    )
}

/// Runs `cxr followup`.
pub async fn run(args: FollowupCmd) -> Result<()> {
    let (patient, transitions) = (args.patient, args.transitions);
    if let Some(p) = patient
        && !args.common.show_sql
    {
        let found = args
            .common
            .query(|c| Ok(format!("WITH cohort AS (\n{c}\n)\nSELECT COUNT(*) AS n FROM cohort WHERE patient_id = {p}")))
            .await?
            .required_i64s("n")?;
        if found.first().copied().unwrap_or(0) == 0 {
            return Err(crate::Error::Usage(format!(
                "patient {p} has no images in this warehouse (or cohort)"
            )));
        }
    }
    let global = args.common.cohort.is_empty();
    args.common
        .run(|c| {
            let c = (!global).then_some(c);
            Ok(match (patient, transitions) {
                (Some(p), _) => timeline_sql(c, p),
                (None, true) => transitions_sql(c),
                (None, false) => summary_sql(c),
            })
        })
        .await
}
