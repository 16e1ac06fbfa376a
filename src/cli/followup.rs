//! `cxr followup`: one patient's timeline, per-finding longitudinal statistics, or
//! transition counts between consecutive studies.

use clap::Args;

use crate::cli::AnalysisArgs;
use crate::cohort::Available;
use crate::cohort::across::Scope;
use crate::error::Result;
use crate::sql::snippets::quote;

/// Arguments of `cxr followup`.
#[derive(Debug, Args)]
#[command(
    after_help = "Cohort flags pick patients, not images: every study of a patient with at least one image in the cohort is followed (`--with Effusion`: the whole timeline of each patient ever positive for Effusion). The per-finding statistics cover the patients with two or more studies (their number is the `patients` column); single-study patients have no follow-up. A study without a date (or other order) has no place in its patient's timeline and is left out; `data_issues` names each.\n\nA finding is new in a study where it is positive and the previous study says it is negative, resolved the reverse; a change from or to unknown (uncertain, or not labelled) is neither. `incident`: negative at the first study, positive later. `persistence`: of the positive studies followed by one where the finding is known, the share where it is positive again.\n\nExample:\n  cxr followup --patient 18404\n  cxr followup --transitions\n  cxr followup --with Effusion",
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

/// Every study of the cohort's patients (or of one patient), per dataset, in the
/// order of `study_order` (datasets that give no order have no follow-up). A
/// study's findings are the union of its images' positive findings, as a bit mask
/// (bits of `cohort::across::findings_bits_cte`), and `known` the findings whose
/// state is known in one of its images: `new_mask` has the findings positive here and
/// negative in the previous study, `resolved_mask` the reverse (from or to unknown is
/// neither). `whole`: the cohort is every image of its datasets, so the
/// cohort's rows are the timelines themselves — and with the default sources
/// those of `studies`, written at ingest.
fn with_followups(cohort: &str, avail: &Available, whole: bool, patient: Option<&str>) -> String {
    if whole && avail.studies && avail.scope.default_states() {
        return studies_sql(&avail.scope, patient);
    }
    let rows = &avail.rows;
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
    SELECT t.*, {mask} AS mask, {known} AS known FROM ({timeline}) AS t
),
studies AS (
    SELECT dataset, patient_id, COALESCE(study_id, image_id) AS study_id,
           MIN(study_order) AS study_order, MIN(age) AS age, COUNT(*) AS images,
           MIN(image_id) AS first_image, MIN(\"view\") AS first_view,
           bit_or(mask) AS mask, bit_or(known) AS known
    FROM timeline
    WHERE patient_id IS NOT NULL AND study_order IS NOT NULL
    GROUP BY dataset, patient_id, COALESCE(study_id, image_id)
),
ordered AS (
    SELECT studies.*, CAST(ROW_NUMBER() OVER w AS INT) AS study_rank, LAG(mask) OVER w AS prev_mask,
           LAG(known) OVER w AS prev_known
    FROM studies
    WINDOW w AS (PARTITION BY dataset, patient_id ORDER BY study_order, study_id)
),
fu AS (
    -- New: positive here, negative (known, not positive) in the previous study;
    -- resolved: the reverse. A change from or to unknown is neither.
    SELECT ordered.*,
           (mask & prev_known) - (mask & prev_known & prev_mask) AS new_mask,
           (prev_mask & known) - (prev_mask & known & mask) AS resolved_mask
    FROM ordered
)",
        findings = crate::cohort::across::findings_bits_cte(),
        mask = crate::cohort::across::positive_mask(false),
        known = crate::cohort::across::positive_mask(true),
    )
}

/// The follow-up of whole datasets as ingest wrote it (`studies`): the rows
/// [`with_followups`] computes.
fn studies_sql(scope: &Scope, patient: Option<&str>) -> String {
    let mut filter = scope.datasets_filter(" WHERE ");
    if let Some(p) = patient {
        let sep = if filter.is_empty() {
            " WHERE "
        } else {
            " AND "
        };
        filter.push_str(&format!("{sep}patient_id = {}", quote(p)));
    }
    format!(
        "WITH {},\nfu AS (SELECT * FROM studies{filter})",
        crate::cohort::across::findings_bits_cte()
    )
}

/// The summary (or, `transitions`, the transitions) of whole datasets as ingest
/// wrote them: the rows [`summary_sql`] and [`transitions_sql`] compute over
/// `studies`, read from `followup_summary` and `followup_transitions`.
fn statistics_sql(scope: &Scope, transitions: bool) -> String {
    let (columns, table, order) = if transitions {
        (
            "label, appeared, resolved",
            "followup_transitions",
            "appeared",
        )
    } else {
        (
            "label, patients, ever_positive, positive_at_first, incident, median_studies_before_first, persistence",
            "followup_summary",
            "ever_positive",
        )
    };
    format!(
        "SELECT {dataset}{columns}\nFROM {table}{filter}\nORDER BY {sort}{order} DESC, label",
        dataset = dataset_column(scope),
        filter = scope.datasets_filter(" WHERE "),
        sort = dataset_sort(scope),
    )
}

/// The findings each dataset's sources label (over `fu`), as a relation
/// `labelled(dataset, known)`: every such finding has a row in the statistics, zero
/// or not.
const LABELLED: &str =
    "labelled AS (SELECT dataset, bit_or(known) AS known FROM fu GROUP BY dataset)";

/// One patient's studies (a patient id may occur in several datasets). NIH's
/// images (no `--dataset`) are shown as NIH's follow-ups: one image per study.
pub fn timeline_sql(with: &str, scope: &Scope) -> String {
    // Sorted by output columns only: DataFusion 55 can drop sort keys when one is
    // not in the select list.
    let (columns, order) = if scope.nih_columns {
        (
            "study_rank, first_image AS image_index, CAST(study_order AS INT) AS follow_up, CAST(age AS SMALLINT) AS age, first_view AS view_position, labels, new_labels, resolved_labels",
            "study_rank",
        )
    } else {
        (
            "dataset, study_rank, study_id, study_order, age, images, labels, new_labels, resolved_labels",
            "dataset, study_rank",
        )
    };
    format!(
        "{with},
listed AS (
    SELECT fu.dataset, fu.study_rank, fu.study_id, fu.study_order, fu.age, fu.images,
           fu.first_image, fu.first_view, f.label,
           (fu.mask & f.bit) <> 0 AS pos,
           fu.study_rank > 1 AND (fu.new_mask & f.bit) <> 0 AS new,
           fu.study_rank > 1 AND (fu.resolved_mask & f.bit) <> 0 AS gone
    FROM fu CROSS JOIN finding f
),
timelines AS (
    SELECT dataset, study_rank, study_id, study_order, age, images, first_image, first_view,
           COALESCE(array_agg(label ORDER BY label) FILTER (WHERE pos), CAST(make_array() AS VARCHAR[])) AS labels,
           CASE WHEN study_rank > 1 THEN COALESCE(array_agg(label ORDER BY label) FILTER (WHERE new), CAST(make_array() AS VARCHAR[])) END AS new_labels,
           CASE WHEN study_rank > 1 THEN COALESCE(array_agg(label ORDER BY label) FILTER (WHERE gone), CAST(make_array() AS VARCHAR[])) END AS resolved_labels
    FROM listed
    GROUP BY dataset, study_rank, study_id, study_order, age, images, first_image, first_view
)
SELECT {columns}
FROM timelines
ORDER BY {order}"
    )
}

/// Appearances and resolutions per dataset and finding it labels, between
/// consecutive studies. One pass over the studies: DataFusion computes a CTE again at
/// each reference, so the findings a dataset labels come from the same groups.
pub fn transitions_sql(with: &str, scope: &Scope) -> String {
    format!(
        "{with},
changes AS (
    SELECT dataset, study_rank > 1 AS later, new_mask, resolved_mask,
           bit_or(known) AS known, COUNT(*) AS n
    FROM fu GROUP BY dataset, study_rank > 1, new_mask, resolved_mask
),
counted AS (
    SELECT c.dataset, f.label,
           SUM(CASE WHEN c.later AND (c.new_mask & f.bit) <> 0 THEN c.n ELSE 0 END) AS appeared,
           SUM(CASE WHEN c.later AND (c.resolved_mask & f.bit) <> 0 THEN c.n ELSE 0 END) AS resolved
    FROM changes c CROSS JOIN finding f
    GROUP BY c.dataset, f.label, f.bit
    HAVING (bit_or(c.known) & f.bit) <> 0
)
SELECT {dataset}label, appeared, resolved FROM counted
ORDER BY {sort}appeared DESC, label",
        dataset = dataset_column(scope),
        sort = dataset_sort(scope)
    )
}

/// Per dataset and finding it labels, over patients with at least two studies:
/// ever positive, positive at the first study, incident, median studies before the
/// first appearance (incident patients), and persistence (share of positive
/// studies whose next is positive).
pub fn summary_sql(with: &str, scope: &Scope) -> String {
    format!(
        "{with},
{LABELLED},
multi AS (SELECT dataset, patient_id FROM fu WHERE study_rank = 2),
n_multi AS (SELECT dataset, COUNT(*) AS n FROM multi GROUP BY dataset),
firsts AS (
    -- Per patient with two or more studies: the first rank at which each finding is positive.
    SELECT fu.dataset, fu.patient_id, f.label, MIN(fu.study_rank) AS first_rank
    FROM fu JOIN multi m ON m.dataset = fu.dataset AND m.patient_id = fu.patient_id
    JOIN finding f ON (fu.mask & f.bit) <> 0
    GROUP BY fu.dataset, fu.patient_id, f.label
),
starts AS (SELECT dataset, patient_id, known AS first_known FROM fu WHERE study_rank = 1),
per_label AS (
    -- Incident: negative (known) at the first study, positive at a later one.
    SELECT s.dataset, s.label,
           COUNT(*) AS ever_positive,
           SUM(CASE WHEN s.first_rank = 1 THEN 1 ELSE 0 END) AS positive_at_first,
           SUM(CASE WHEN s.incident THEN 1 ELSE 0 END) AS incident,
           median(CASE WHEN s.incident THEN s.first_rank - 1 END) AS median_studies_before_first
    FROM (
        SELECT fs.dataset, fs.label, fs.first_rank,
               fs.first_rank > 1 AND (st.first_known & f.bit) <> 0 AS incident
        FROM firsts fs
        JOIN starts st ON st.dataset = fs.dataset AND st.patient_id = fs.patient_id
        JOIN finding f ON f.label = fs.label
    ) AS s
    GROUP BY s.dataset, s.label
),
pairs AS (
    SELECT dataset, prev_mask, known, resolved_mask, COUNT(*) AS n
    FROM fu WHERE study_rank > 1 GROUP BY dataset, prev_mask, known, resolved_mask
),
kept AS (
    -- Positive studies followed by one where the finding's state is known, and those
    -- whose finding then resolved.
    SELECT p.dataset, f.label,
           SUM(CASE WHEN (p.prev_mask & p.known & f.bit) <> 0 THEN p.n ELSE 0 END) AS followed,
           SUM(CASE WHEN (p.resolved_mask & f.bit) <> 0 THEN p.n ELSE 0 END) AS dropped
    FROM pairs p CROSS JOIN finding f GROUP BY p.dataset, f.label
),
rows AS (
    SELECT l.dataset, f.label,
           nm.n AS patients,
           COALESCE(b.ever_positive, 0) AS ever_positive,
           COALESCE(b.positive_at_first, 0) AS positive_at_first,
           COALESCE(b.incident, 0) AS incident,
           b.median_studies_before_first,
           round(CAST(COALESCE(k.followed, 0) - COALESCE(k.dropped, 0) AS DOUBLE) / NULLIF(COALESCE(k.followed, 0), 0), 4) AS persistence
    FROM labelled l
    CROSS JOIN finding f
    JOIN n_multi nm ON nm.dataset = l.dataset
    LEFT JOIN per_label b ON b.dataset = l.dataset AND b.label = f.label
    LEFT JOIN kept k ON k.dataset = l.dataset AND k.label = f.label
    WHERE (l.known & f.bit) <> 0
)
SELECT {dataset}label, patients, ever_positive, positive_at_first, incident, median_studies_before_first, persistence
FROM rows
ORDER BY {sort}ever_positive DESC, label",
        dataset = dataset_column(scope),
        sort = dataset_sort(scope)
    )
}

/// `dataset, ` where the rows are of several datasets; nothing for NIH's own
/// follow-ups.
fn dataset_column(scope: &Scope) -> &'static str {
    if scope.nih_columns { "" } else { "dataset, " }
}

/// The first sort key: the dataset, where there is one. As an expression: DataFusion
/// 55 takes `dataset` for a key of these rows (it keys `labelled`, joined to every
/// finding) and drops the sort keys after a plain `dataset`.
fn dataset_sort(scope: &Scope) -> &'static str {
    if scope.nih_columns {
        ""
    } else {
        "lower(dataset), "
    }
}

/// Says which of the datasets asked for give no order of their studies: their rows
/// are left out, and an empty answer would otherwise look like "no change".
fn note_unordered_datasets(asked: &[String], show_sql: bool) {
    let unordered: Vec<&str> = crate::datasets::DATASETS
        .iter()
        .filter(|d| {
            !d.orders_studies && asked.iter().any(|a| a.trim().eq_ignore_ascii_case(d.name))
        })
        .map(|d| d.name)
        .collect();
    if unordered.is_empty() || show_sql {
        return;
    }
    say!(
        "cxr: note: {} {} no order of studies, so no follow-up: {} images are left out",
        unordered.join(", "),
        if unordered.len() == 1 {
            "gives"
        } else {
            "give"
        },
        if unordered.len() == 1 { "its" } else { "their" }
    );
}

/// Runs `cxr followup`.
pub async fn run(mut args: FollowupCmd) -> Result<()> {
    if args.common.cohort.first_study {
        return Err(crate::Error::Usage(
            "--first-study keeps one study per patient, but follow-up reads every study of the patients a cohort picks; leave it out".into(),
        ));
    }
    let transitions = args.transitions;
    note_unordered_datasets(&args.common.cohort.datasets, args.common.show_sql);
    let patient = match args.patient.as_deref().map(str::trim) {
        // NIH's ids are numbers: `018404` is patient 18404, as `images` holds it.
        Some(p) if !args.common.cohort.across_datasets() => match p.parse::<i32>() {
            Ok(n) if n >= 0 => Some(n.to_string()),
            _ => {
                return Err(crate::Error::Usage(format!(
                    "--patient `{p}`: NIH patient ids are whole numbers (other datasets' ids need --dataset)"
                )));
            }
        },
        Some(p) => Some(p.to_string()),
        None => None,
    };
    args.common.patient_required = patient.clone();
    if patient.is_none() && !transitions && args.common.cohort.narrows() && !args.common.show_sql {
        say!(
            "cxr: note: the statistics cover the cohort's patients with two or more studies (the `patients` column); its single-study patients have no follow-up"
        );
    }
    let whole = !args.common.cohort.narrows();
    let timeline = patient.is_some();
    let answer = move |with: &str, scope: &Scope| match (timeline, transitions) {
        (true, _) => timeline_sql(with, scope),
        (false, true) => transitions_sql(with, scope),
        (false, false) => summary_sql(with, scope),
    };
    // A whole dataset's follow-up is read from `studies` (see `with_followups`):
    // nothing to compute once.
    let cohort = &args.common.cohort;
    let from_studies = whole
        && crate::cohort::across::reads_default_states(
            &cohort.sources,
            cohort.uncertain.unwrap_or_default(),
        );
    if args.common.show_sql || from_studies {
        return args
            .common
            .run(|c, avail| {
                if whole && !timeline && avail.scope.default_states() && avail.followup_statistics {
                    return Ok(statistics_sql(&avail.scope, transitions));
                }
                let with = with_followups(c, avail, whole, patient.as_deref());
                Ok(answer(&with, &avail.scope))
            })
            .await;
    }
    // The follow-up rows are computed once: the summary reads them three times.
    let with = format!(
        "WITH {},\nfu AS (SELECT * FROM cohort_followups)",
        crate::cohort::across::findings_bits_cte()
    );
    args.common
        .run_staged(
            "cohort_followups",
            |c, avail| {
                let staged = with_followups(c, avail, whole, patient.as_deref());
                Ok(format!("{staged}\nSELECT * FROM fu"))
            },
            |avail| Ok(answer(&with, &avail.scope)),
        )
        .await
}
