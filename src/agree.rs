//! Agreement between label sources: Cohen's kappa per finding for two sources over
//! the images both label, and Fleiss' kappa per finding for a dataset whose images
//! are each read by several readers (VinDr-CXR's radiologists).

use crate::cohort::across::Uncertain;
use crate::datasets::agree::{Agreement, Pairs, cohen, fleiss};
use crate::error::{Error, Result};
use crate::sql::Warehouse;
use crate::sql::snippets::quote;

/// One finding's agreement between two sources.
#[derive(Debug, Clone)]
pub struct Row {
    /// The finding.
    pub finding: String,
    /// Counts, percent agreement and kappa.
    pub agreement: Agreement,
}

/// Groupings of findings a source may label as one (Google's 2019 NIH expert labels):
/// (raw label, the findings it groups). A source that labels every finding of a group
/// is compared on the group too: positive when any of them is, as in Majkowska et al.
/// (2019) and `queries/expert_agreement.sql`.
pub const GROUPINGS: [(&str, &[&str]); 2] = [
    ("Nodule or mass", &["Mass", "Nodule"]),
    (
        "Airspace opacity",
        &["Consolidation", "Infiltration", "Pneumonia"],
    ),
];

/// The label rows of every source: `dataset_labels`, and for the reader votes (VinDr's
/// `vindr_any`, `vindr_majority`, `vindr_all`, which are rows of `finding_states`
/// only) one row per finding the vote states, as a reader's row would be, and one
/// row without a finding that marks the image as labelled.
fn labels_sql() -> String {
    let votes: Vec<String> = crate::datasets::DATASETS
        .iter()
        .filter_map(|d| d.readers)
        .flat_map(|r| r.votes)
        .map(quote)
        .collect();
    format!(
        "(WITH {findings}
    SELECT dataset, image_id, source, raw_label, finding, \"value\" FROM dataset_labels
    UNION ALL
    SELECT s.dataset, s.image_id, s.source, COALESCE(f.label, '') AS raw_label, f.label AS finding,
           CAST(CASE WHEN f.label IS NULL THEN 0 WHEN (s.positive & f.bit) <> 0 THEN 1
                     WHEN (s.uncertain & f.bit) <> 0 THEN -1 ELSE 0 END AS TINYINT) AS \"value\"
    FROM finding_states s
    LEFT JOIN finding f ON ((s.positive | s.uncertain | s.negative) & f.bit) <> 0
    WHERE s.source IN ({votes}))",
        findings = crate::cohort::across::findings_bits_cte(),
        votes = votes.join(", ")
    )
}

/// The SQL of the calls of the label rows `chosen` keeps (a condition on
/// `all_labels`): (dataset, image_id, name, positive, uncertain) for every finding
/// they state and every grouping they state or label all the members of.
fn calls_sql(chosen: &str) -> String {
    let groups: Vec<String> = GROUPINGS
        .iter()
        .flat_map(|(g, members)| {
            members
                .iter()
                .map(move |m| format!("({}, {})", quote(g), quote(m)))
        })
        .collect();
    format!(
        "(WITH l AS (SELECT * FROM {labels} AS all_labels WHERE {chosen}),
    grouping(name, member) AS (VALUES {groups}),
    whole_groups AS (
        SELECT g.name FROM grouping g LEFT JOIN (SELECT DISTINCT finding FROM l WHERE finding IS NOT NULL) AS f ON f.finding = g.member
        GROUP BY g.name HAVING COUNT(f.finding) = COUNT(*)
    )
    SELECT dataset, image_id, finding AS name, \"value\" = 1 AS positive, \"value\" = -1 AS uncertain, false AS derived FROM l WHERE finding IS NOT NULL
    UNION ALL
    SELECT dataset, image_id, raw_label, \"value\" = 1, \"value\" = -1, false FROM l WHERE raw_label IN (SELECT name FROM grouping)
    UNION ALL
    SELECT l.dataset, l.image_id, g.name, l.\"value\" = 1, l.\"value\" = -1, true
    FROM l JOIN grouping g ON g.member = l.finding JOIN whole_groups w ON w.name = g.name)",
        groups = groups.join(", "),
        labels = labels_sql()
    )
}

/// The SQL of the 2 × 2 table per finding (or grouping, see [`GROUPINGS`]) for
/// sources `a` and `b`: over the images both sources label (and, given `cohort`, a
/// query of `dataset, image_id` rows, that are in it), for the names both sources
/// label. A name a source states positive is a yes; uncertain, what `uncertain`
/// makes it (U-Ignore, the default: the image leaves that finding's table); not
/// stated positive, a no. A grouping is compared only where a source labels it as
/// one finding: two sources that both label every member are compared on the
/// members alone.
///
/// Only the images a source labels a name for are rows: the images neither
/// labels are no/no, counted from the number of images (a grid of every image and
/// finding took over 512 MiB at MIMIC's 377,110 images).
pub fn pairwise_sql(a: &str, b: &str, cohort: Option<&str>, uncertain: Uncertain) -> String {
    let in_cohort = match cohort {
        None => String::new(),
        Some(c) => format!(
            "\n    JOIN (SELECT DISTINCT dataset, image_id FROM (\n{c}\n) AS c0) AS c ON c.dataset = la.dataset AND c.image_id = la.image_id"
        ),
    };
    // Per image and name, one state: positive, else uncertain, else negative.
    let states = |calls: &str| {
        format!(
            "(SELECT x.dataset, x.image_id, x.name AS finding,
        CASE WHEN bool_or(x.positive) THEN TRUE WHEN bool_or(x.uncertain) THEN {u} ELSE FALSE END AS yes
    FROM {calls} x JOIN both_images i ON i.dataset = x.dataset AND i.image_id = x.image_id
    WHERE x.name IN (SELECT finding FROM f)
    GROUP BY x.dataset, x.image_id, x.name)",
            u = uncertain.sql()
        )
    };
    format!(
        "WITH la AS {ca},
lb AS {cb},
both_images AS (
    SELECT DISTINCT la.dataset, la.image_id
    FROM (SELECT DISTINCT dataset, image_id FROM {labels} AS all_a WHERE source = {qa}) AS la
    JOIN (SELECT DISTINCT dataset, image_id FROM {labels} AS all_b WHERE source = {qb}) AS lb
      ON la.dataset = lb.dataset AND la.image_id = lb.image_id{in_cohort}
),
va AS {va},
vb AS {vb},
f AS (
    SELECT finding FROM (SELECT DISTINCT name AS finding FROM va INTERSECT SELECT DISTINCT name FROM vb) AS common
    WHERE finding NOT IN (SELECT DISTINCT name FROM va WHERE derived INTERSECT SELECT DISTINCT name FROM vb WHERE derived)
),
sa AS {sa},
sb AS {sb},
pairs AS (
    SELECT COALESCE(sa.finding, sb.finding) AS finding,
           COALESCE(sa.yes, FALSE) AS ya, COALESCE(sb.yes, FALSE) AS yb,
           (sa.finding IS NOT NULL AND sa.yes IS NULL) OR (sb.finding IS NOT NULL AND sb.yes IS NULL) AS unknown
    FROM sa FULL JOIN sb ON sa.dataset = sb.dataset AND sa.image_id = sb.image_id AND sa.finding = sb.finding
),
listed AS (
    SELECT finding,
           SUM(CASE WHEN NOT unknown AND ya AND yb THEN 1 ELSE 0 END) AS yes_yes,
           SUM(CASE WHEN NOT unknown AND ya AND NOT yb THEN 1 ELSE 0 END) AS yes_no,
           SUM(CASE WHEN NOT unknown AND yb AND NOT ya THEN 1 ELSE 0 END) AS no_yes,
           SUM(CASE WHEN NOT unknown AND NOT ya AND NOT yb THEN 1 ELSE 0 END) AS no_no,
           COUNT(*) AS images
    FROM pairs GROUP BY finding
)
SELECT f.finding,
       COALESCE(l.yes_yes, 0) AS yes_yes,
       COALESCE(l.yes_no, 0) AS yes_no,
       COALESCE(l.no_yes, 0) AS no_yes,
       n.images - COALESCE(l.images, 0) + COALESCE(l.no_no, 0) AS no_no
FROM f CROSS JOIN (SELECT COUNT(*) AS images FROM both_images) AS n
LEFT JOIN listed l ON l.finding = f.finding
WHERE n.images > 0
ORDER BY f.finding",
        ca = calls_sql(&format!("source = {}", quote(a))),
        cb = calls_sql(&format!("source = {}", quote(b))),
        va = vocabulary_calls(a, "la"),
        vb = vocabulary_calls(b, "lb"),
        sa = states("la"),
        sb = states("lb"),
        qa = quote(a),
        qb = quote(b),
        labels = labels_sql(),
    )
}

/// The calls whose names a source labels: its vocabulary's (a VinDr reader who never
/// marked a finding any reader labels still said it was absent); for a source that
/// is its own vocabulary, its calls `own`.
fn vocabulary_calls(source: &str, own: &str) -> String {
    let readers = crate::datasets::DATASETS
        .iter()
        .filter_map(|d| d.readers)
        .find(|r| r.share(source));
    match readers {
        Some(r) => {
            let votes: Vec<String> = r.votes.iter().map(|v| quote(v)).collect();
            calls_sql(&format!(
                "(starts_with(source, {}) OR source IN ({}))",
                quote(r.source_prefix),
                votes.join(", ")
            ))
        }
        None => format!("(SELECT * FROM {own})"),
    }
}

/// Cohen's kappa per finding between sources `a` and `b`, uncertain labels taken
/// as `uncertain` says.
pub async fn pairwise(
    wh: &Warehouse,
    (a, b): (&str, &str),
    uncertain: Uncertain,
    cohort: Option<&str>,
    params: &[(String, datafusion::scalar::ScalarValue)],
) -> Result<Vec<Row>> {
    let (a, b) = (known_source(wh, a).await?, known_source(wh, b).await?);
    let rows = wh
        .query(&pairwise_sql(&a, &b, cohort, uncertain), params)
        .await?;
    let count = |c: &str| -> Result<Vec<u64>> {
        Ok(rows
            .required_i64s(c)?
            .into_iter()
            .map(|v| v as u64)
            .collect())
    };
    let (yy, yn, ny, nn) = (
        count("yes_yes")?,
        count("yes_no")?,
        count("no_yes")?,
        count("no_no")?,
    );
    Ok(rows
        .required_strings("finding")?
        .into_iter()
        .enumerate()
        .map(|(r, finding)| Row {
            finding,
            agreement: cohen(Pairs {
                yes_yes: yy[r],
                yes_no: yn[r],
                no_yes: ny[r],
                no_no: nn[r],
            }),
        })
        .collect())
}

/// The warehouse's name of a source (given in any case); refuses one it has no
/// labels of, listing the known ones (the reader votes among them).
async fn known_source(wh: &Warehouse, source: &str) -> Result<String> {
    if !wh.has_table("dataset_labels") {
        return Err(Error::Usage(
            "this warehouse has no dataset_labels table; run `cxr ingest` again with this cxr"
                .into(),
        ));
    }
    let known = wh
        .query(
            "SELECT DISTINCT source FROM finding_states ORDER BY source",
            &[],
        )
        .await?
        .required_strings("source")?;
    // Named without regard to case, as `--source` names them.
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(source.trim())) {
        Ok(k.clone())
    } else {
        Err(Error::Usage(format!(
            "unknown label source `{source}`; the sources are: {}",
            known.join(", ")
        )))
    }
}

/// One finding's agreement among the readers of a multi-reader dataset.
#[derive(Debug, Clone)]
pub struct ReadersRow {
    /// The finding.
    pub finding: String,
    /// Images rated.
    pub images: u64,
    /// Readers per image.
    pub readers: u64,
    /// Reader calls that were positive.
    pub positive_calls: u64,
    /// Fleiss' kappa (None when undefined).
    pub kappa: Option<f64>,
}

/// Fleiss' kappa per finding over the images of `dataset` whose readers are the
/// sources `<dataset>_R*`; images read by another number of readers than the most
/// common one are left out (Fleiss' kappa needs a fixed number of raters).
pub async fn readers(wh: &Warehouse, dataset: &str) -> Result<Vec<ReadersRow>> {
    let dataset = &crate::datasets::dataset_name(dataset);
    let q = quote(dataset);
    let prefix = quote(&format!("{dataset}_R%"));
    let sql = format!(
        "WITH l AS (SELECT * FROM dataset_labels WHERE dataset = {q} AND source LIKE {prefix}),
r AS (SELECT image_id, COUNT(DISTINCT source) AS raters FROM l GROUP BY image_id),
f AS (SELECT DISTINCT finding FROM l WHERE finding IS NOT NULL),
pos AS (SELECT image_id, finding, COUNT(DISTINCT source) AS n_pos FROM l WHERE \"value\" = 1 AND finding IS NOT NULL GROUP BY image_id, finding)
SELECT f.finding, r.image_id, r.raters, COALESCE(pos.n_pos, 0) AS n_pos
FROM r CROSS JOIN f LEFT JOIN pos ON pos.image_id = r.image_id AND pos.finding = f.finding
ORDER BY f.finding"
    );
    let rows = wh.query(&sql, &[]).await?;
    if rows.is_empty() {
        let with_readers = wh
            .query(
                "SELECT DISTINCT dataset FROM dataset_labels WHERE source LIKE dataset || '_R%' ORDER BY dataset",
                &[],
            )
            .await?
            .required_strings("dataset")?;
        if with_readers.iter().any(|d| d == dataset) {
            return Err(Error::Usage(format!(
                "the readers of `{dataset}` marked no finding of the 18 on any image (only `No finding` or labels the map leaves unmapped): there is no finding to compare"
            )));
        }
        return Err(Error::Usage(format!(
            "dataset `{dataset}` has no per-reader label sources ({dataset}_R1, ...) in this warehouse; {}",
            if with_readers.is_empty() {
                "none of its datasets has them (VinDr-CXR does: `cxr ingest --dataset vindr=...`)"
                    .to_string()
            } else {
                format!("datasets with readers: {}", with_readers.join(", "))
            }
        )));
    }
    let findings = rows.required_strings("finding")?;
    let raters = rows.required_i64s("raters")?;
    let n_pos = rows.required_i64s("n_pos")?;
    let mut by_raters = std::collections::HashMap::<i64, usize>::new();
    for r in &raters {
        *by_raters.entry(*r).or_default() += 1;
    }
    let usual = by_raters
        .into_iter()
        .max_by_key(|(k, n)| (*n, *k))
        .map(|(k, _)| k)
        .unwrap_or(0);
    let mut out: Vec<ReadersRow> = Vec::new();
    let mut i = 0;
    while i < findings.len() {
        let j = (i..findings.len())
            .find(|&j| findings[j] != findings[i])
            .unwrap_or(findings.len());
        let items: Vec<(u64, u64)> = (i..j)
            .filter(|&k| raters[k] == usual)
            .map(|k| (n_pos[k] as u64, raters[k] as u64))
            .collect();
        out.push(ReadersRow {
            finding: findings[i].clone(),
            images: items.len() as u64,
            readers: usual as u64,
            positive_calls: items.iter().map(|x| x.0).sum(),
            kappa: fleiss(&items),
        });
        i = j;
    }
    Ok(out)
}
