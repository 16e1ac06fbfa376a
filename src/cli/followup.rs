//! `cxr followup`: one patient's timeline, per-finding longitudinal statistics, or
//! transition counts between consecutive studies.

use clap::Args;

use crate::cli::AnalysisArgs;
use crate::error::Result;
use crate::sql::snippets::quote;

/// Arguments of `cxr followup`.
#[derive(Debug, Args)]
#[command(
    after_help = "Cohort flags pick patients, not images: every study of a patient with at least one image in the cohort is followed (`--with Effusion`: the whole timeline of each patient ever positive for Effusion). The per-finding statistics cover the patients with two or more studies (their number is the `patients` column); single-study patients have no follow-up.\n\nExample:\n  cxr followup --patient 18404\n  cxr followup --transitions\n  cxr followup --with Effusion",
    // Follow-up reads every study of a patient: one study per patient is refused.
    mut_arg("first_study", |a| a.hide(true))
)]
pub struct FollowupCmd {
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// Show this patient's timeline, one row per study.
    #[arg(long, value_name = "ID", conflicts_with = "transitions")]
    pub patient: Option<String>,
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
pub fn timeline_sql(cohort: Option<&str>, patient: &str) -> String {
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

/// Across datasets: every study of the cohort's patients (or of one patient), per
/// dataset, in the order of `study_order` (datasets that give no order have no
/// follow-up). A study's findings are the union of its images' positive findings, as
/// a bit mask (bits of `cohort::across::findings_bits_cte`): `new_mask` and
/// `resolved_mask` compare it with the previous study's.
fn across_with_followups(cohort: &str, rows: &str, whole: bool, patient: Option<&str>) -> String {
    let mut timeline = if whole {
        "SELECT * FROM cohort".to_string()
    } else {
        format!(
            "SELECT r.* FROM {rows} AS r\n    WHERE EXISTS (SELECT 1 FROM cohort c WHERE c.dataset = r.dataset AND c.patient_id = r.patient_id)"
        )
    };
    if let Some(p) = patient {
        let (sep, q) = (if whole { " WHERE" } else { " AND" }, quote(p));
        timeline.push_str(&format!("{sep} patient_id = {q}"));
    }
    format!(
        "WITH cohort AS (\n{cohort}\n),
{findings},
timeline AS (
    SELECT t.*, {mask} AS mask FROM ({timeline}) AS t
),
studies AS (
    SELECT dataset, patient_id, COALESCE(study_id, image_id) AS study_id,
           MIN(study_order) AS study_order, MIN(age) AS age, COUNT(*) AS images,
           bit_or(mask) AS mask
    FROM timeline
    WHERE patient_id IS NOT NULL AND study_order IS NOT NULL
    GROUP BY dataset, patient_id, COALESCE(study_id, image_id)
),
ordered AS (
    SELECT studies.*, CAST(ROW_NUMBER() OVER w AS INT) AS study_rank, LAG(mask) OVER w AS prev_mask
    FROM studies
    WINDOW w AS (PARTITION BY dataset, patient_id ORDER BY study_order, study_id)
),
fu AS (
    SELECT ordered.*,
           mask - (mask & prev_mask) AS new_mask,
           prev_mask - (mask & prev_mask) AS resolved_mask
    FROM ordered
)",
        findings = crate::cohort::across::findings_bits_cte(),
        mask = crate::cohort::across::positive_mask(false),
    )
}

/// One patient's studies across datasets (a patient id may occur in several).
pub fn across_timeline_sql(with: &str) -> String {
    format!(
        "{with},
listed AS (
    SELECT fu.dataset, fu.study_rank, fu.study_id, fu.study_order, fu.age, fu.images, f.label,
           (fu.mask & f.bit) <> 0 AS pos,
           fu.study_rank > 1 AND (fu.new_mask & f.bit) <> 0 AS new,
           fu.study_rank > 1 AND (fu.resolved_mask & f.bit) <> 0 AS gone
    FROM fu CROSS JOIN finding f
)
SELECT dataset, study_rank, study_id, study_order, age, images,
       COALESCE(array_agg(label ORDER BY label) FILTER (WHERE pos), CAST(make_array() AS VARCHAR[])) AS labels,
       CASE WHEN study_rank > 1 THEN COALESCE(array_agg(label ORDER BY label) FILTER (WHERE new), CAST(make_array() AS VARCHAR[])) END AS new_labels,
       CASE WHEN study_rank > 1 THEN COALESCE(array_agg(label ORDER BY label) FILTER (WHERE gone), CAST(make_array() AS VARCHAR[])) END AS resolved_labels
FROM listed
GROUP BY dataset, study_rank, study_id, study_order, age, images
ORDER BY dataset, study_rank"
    )
}

/// Appearances and resolutions per dataset and finding (findings that never appear
/// or resolve in a dataset are left out).
pub fn across_transitions_sql(with: &str) -> String {
    format!(
        "{with},
changes AS (
    SELECT dataset, new_mask, resolved_mask, COUNT(*) AS n
    FROM fu WHERE study_rank > 1 GROUP BY dataset, new_mask, resolved_mask
),
counted AS (
    SELECT c.dataset, f.label,
           SUM(CASE WHEN (c.new_mask & f.bit) <> 0 THEN c.n ELSE 0 END) AS appeared,
           SUM(CASE WHEN (c.resolved_mask & f.bit) <> 0 THEN c.n ELSE 0 END) AS resolved
    FROM changes c CROSS JOIN finding f GROUP BY c.dataset, f.label
)
SELECT dataset, label, appeared, resolved FROM counted
WHERE appeared + resolved > 0
ORDER BY dataset, appeared DESC, label"
    )
}

/// [`summary_sql`] per dataset, over the findings positive at least once there.
pub fn across_summary_sql(with: &str) -> String {
    format!(
        "{with},
multi AS (SELECT dataset, patient_id FROM fu WHERE study_rank = 2),
n_multi AS (SELECT dataset, COUNT(*) AS n FROM multi GROUP BY dataset),
firsts AS (
    -- Per patient with two or more studies: the first rank at which each finding is positive.
    SELECT fu.dataset, fu.patient_id, f.label, MIN(fu.study_rank) AS first_rank
    FROM fu JOIN multi m ON m.dataset = fu.dataset AND m.patient_id = fu.patient_id
    JOIN finding f ON (fu.mask & f.bit) <> 0
    GROUP BY fu.dataset, fu.patient_id, f.label
),
per_label AS (
    SELECT dataset, label,
           COUNT(*) AS ever_positive,
           SUM(CASE WHEN first_rank = 1 THEN 1 ELSE 0 END) AS positive_at_first,
           SUM(CASE WHEN first_rank > 1 THEN 1 ELSE 0 END) AS incident,
           median(CASE WHEN first_rank > 1 THEN first_rank - 1 END) AS median_studies_before_first
    FROM firsts GROUP BY dataset, label
),
pairs AS (
    SELECT dataset, prev_mask, resolved_mask, COUNT(*) AS n
    FROM fu WHERE study_rank > 1 GROUP BY dataset, prev_mask, resolved_mask
),
kept AS (
    -- Positive studies followed by another, and those whose finding then resolved.
    SELECT p.dataset, f.label,
           SUM(CASE WHEN (p.prev_mask & f.bit) <> 0 THEN p.n ELSE 0 END) AS followed,
           SUM(CASE WHEN (p.resolved_mask & f.bit) <> 0 THEN p.n ELSE 0 END) AS dropped
    FROM pairs p CROSS JOIN finding f GROUP BY p.dataset, f.label
)
SELECT b.dataset, b.label,
       nm.n AS patients,
       b.ever_positive, b.positive_at_first, b.incident, b.median_studies_before_first,
       round(CAST(COALESCE(k.followed, 0) - COALESCE(k.dropped, 0) AS DOUBLE) / NULLIF(COALESCE(k.followed, 0), 0), 4) AS persistence
FROM per_label b
JOIN n_multi nm ON nm.dataset = b.dataset
LEFT JOIN kept k ON k.dataset = b.dataset AND k.label = b.label
ORDER BY b.dataset, b.ever_positive DESC, b.label"
    )
}

/// Runs `cxr followup`.
pub async fn run(args: FollowupCmd) -> Result<()> {
    if args.common.cohort.first_study {
        return Err(crate::Error::Usage(
            "--first-study keeps one study per patient, but follow-up reads every study of the patients a cohort picks; leave it out".into(),
        ));
    }
    let transitions = args.transitions;
    let across = args.common.cohort.across_datasets();
    let patient = match &args.patient {
        None => None,
        Some(p) if across => Some(crate::sql::snippets::quote(p.trim())),
        Some(p) => Some(
            p.trim()
                .parse::<i64>()
                .map_err(|_| {
                    crate::Error::Usage(format!(
                        "--patient `{p}`: NIH patient ids are whole numbers (other datasets' ids need --dataset)"
                    ))
                })?
                .to_string(),
        ),
    };
    if let Some(p) = &patient
        && !args.common.show_sql
    {
        let found = args
            .common
            .query(|c, _| Ok(format!("WITH cohort AS (\n{c}\n)\nSELECT COUNT(*) AS n FROM cohort WHERE patient_id = {p}")))
            .await?
            .required_i64s("n")?;
        if found.first().copied().unwrap_or(0) == 0 {
            return Err(crate::Error::Usage(format!(
                "patient {} has no images in this warehouse (or cohort)",
                args.patient.as_deref().unwrap_or_default()
            )));
        }
    }
    if args.patient.is_none()
        && !transitions
        && args.common.cohort.narrows()
        && !args.common.show_sql
    {
        eprintln!(
            "cxr: note: the statistics cover the cohort's patients with two or more studies (the `patients` column); its single-study patients have no follow-up"
        );
    }
    if across && !args.common.show_sql {
        // The follow-up rows are computed once: the summary reads them three times.
        let whole = !args.common.cohort.narrows();
        let raw = args.patient.clone();
        let with = format!(
            "WITH {},\nfu AS (SELECT * FROM xr_followups)",
            crate::cohort::across::findings_bits_cte()
        );
        return args
            .common
            .run_staged(
                "xr_followups",
                |c, avail| {
                    let staged = across_with_followups(
                        c,
                        &avail.across_rows,
                        whole,
                        raw.as_deref().map(str::trim),
                    );
                    Ok(format!("{staged}\nSELECT * FROM fu"))
                },
                || {
                    Ok(match (&args.patient, transitions) {
                        (Some(_), _) => across_timeline_sql(&with),
                        (None, true) => across_transitions_sql(&with),
                        (None, false) => across_summary_sql(&with),
                    })
                },
            )
            .await;
    }
    if across {
        let whole = !args.common.cohort.narrows();
        let raw = args.patient.clone();
        return args
            .common
            .run(|c, avail| {
                let with = across_with_followups(
                    c,
                    &avail.across_rows,
                    whole,
                    raw.as_deref().map(str::trim),
                );
                Ok(match (&raw, transitions) {
                    (Some(_), _) => across_timeline_sql(&with),
                    (None, true) => across_transitions_sql(&with),
                    (None, false) => across_summary_sql(&with),
                })
            })
            .await;
    }
    let global = args.common.cohort.is_empty();
    args.common
        .run(|c, _| {
            let c = (!global).then_some(c);
            Ok(match (&patient, transitions) {
                (Some(p), _) => timeline_sql(c, p),
                (None, true) => transitions_sql(c),
                (None, false) => summary_sql(c),
            })
        })
        .await
}
