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
/// image in the cohort, so that each timeline is complete.
fn with_followups(cohort: &str) -> String {
    let fu = crate::sql::view_sql("followups", "timeline", "findings");
    format!(
        "WITH cohort AS (\n{cohort}\n),\ntimeline AS (\n    SELECT t.* FROM images t JOIN (SELECT DISTINCT patient_id FROM cohort) AS cp ON cp.patient_id = t.patient_id\n),\nfu AS (\n{fu}\n)"
    )
}

/// The timeline of one patient.
pub fn timeline_sql(cohort: &str, patient: i64) -> String {
    format!(
        "{},\nstudies AS (SELECT fu.*, t.view_position FROM fu JOIN timeline t ON t.image_index = fu.image_index)\nSELECT study_rank, image_index, follow_up, age, view_position, labels, new_labels, resolved_labels\nFROM studies WHERE patient_id = {patient}\nORDER BY study_rank",
        with_followups(cohort)
    )
}

/// Appearances and resolutions per finding between consecutive studies.
pub fn transitions_sql(cohort: &str) -> String {
    format!(
        "{},\n{},
appeared AS (SELECT unnest(new_labels) AS label FROM fu WHERE new_labels IS NOT NULL),
resolved AS (SELECT unnest(resolved_labels) AS label FROM fu WHERE resolved_labels IS NOT NULL)
SELECT f.label,
       (SELECT COUNT(*) FROM appeared a WHERE a.label = f.label) AS appeared,
       (SELECT COUNT(*) FROM resolved r WHERE r.label = f.label) AS resolved
FROM finding f
ORDER BY appeared DESC, f.label",
        with_followups(cohort),
        findings_values()
    )
}

/// Per finding, over patients with at least two studies: ever positive, positive at
/// the first study, incident, median studies before the first appearance (incident
/// patients), and persistence (share of positive studies whose next is positive).
pub fn summary_sql(cohort: &str) -> String {
    format!(
        "{},\n{},
multi AS (SELECT patient_id FROM fu GROUP BY patient_id HAVING COUNT(*) >= 2),
s AS (
    SELECT fu.patient_id, fu.study_rank, fu.labels,
           LEAD(fu.labels) OVER (PARTITION BY fu.patient_id ORDER BY fu.study_rank) AS next_labels
    FROM fu JOIN multi m ON m.patient_id = fu.patient_id
),
per AS (
    SELECT f.label, s.patient_id, s.study_rank,
           array_has(s.labels, f.label) AS pos,
           s.next_labels IS NOT NULL AS has_next,
           COALESCE(array_has(s.next_labels, f.label), false) AS next_pos
    FROM s CROSS JOIN finding f
),
by_patient AS (
    SELECT label, patient_id,
           MAX(CASE WHEN pos THEN 1 ELSE 0 END) AS ever,
           MAX(CASE WHEN pos AND study_rank = 1 THEN 1 ELSE 0 END) AS at_first,
           MIN(CASE WHEN pos THEN study_rank END) AS first_rank
    FROM per GROUP BY label, patient_id
),
persist AS (
    SELECT label,
           SUM(CASE WHEN pos AND has_next AND next_pos THEN 1 ELSE 0 END) AS kept,
           SUM(CASE WHEN pos AND has_next THEN 1 ELSE 0 END) AS followed
    FROM per GROUP BY label
)
SELECT b.label,
       COUNT(*) AS patients,
       SUM(b.ever) AS ever_positive,
       SUM(b.at_first) AS positive_at_first,
       SUM(CASE WHEN b.ever = 1 AND b.at_first = 0 THEN 1 ELSE 0 END) AS incident,
       median(CASE WHEN b.ever = 1 AND b.at_first = 0 THEN b.first_rank - 1 END) AS median_studies_before_first,
       round(CAST(MAX(p.kept) AS DOUBLE) / NULLIF(MAX(p.followed), 0), 4) AS persistence
FROM by_patient b JOIN persist p ON p.label = b.label
GROUP BY b.label
ORDER BY ever_positive DESC, b.label",
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
    args.common
        .run(|c| {
            Ok(match (patient, transitions) {
                (Some(p), _) => timeline_sql(c, p),
                (None, true) => transitions_sql(c),
                (None, false) => summary_sql(c),
            })
        })
        .await
}
