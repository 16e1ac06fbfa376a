-- finding_states: per image and label source, the findings the source states positive,
-- uncertain and negative, as bit masks over the 18 findings (bit k is the k-th finding of
-- docs/DATASETS.md's vocabulary, in the order below); whether the source states the image
-- normal (the dataset's own normal label, `normal` below, in any case, with value 1); whether it states
-- a label outside the 18 positive or uncertain (other than a normal label or one allowed
-- beside it, `beside` below). One row per (image, source) with any label; and where each
-- reader of an image is a source (VinDr, `readers` below), one row per image for each
-- vote of its readers: a statement (a finding positive, uncertain or negative; the
-- image normal; another label) counts in `vindr_any` when at least one reader of the
-- image makes it, in `vindr_majority` when more than half do, in `vindr_all` when all do.
-- Ingest writes this table from the label rows (`src/ingest/across.rs`, with the
-- dataset registry of `src/datasets/mod.rs`); this SQL is its definition, registered as
-- a view on a warehouse written before the table existed, and a test checks the two agree.
WITH finding(label, bit) AS (
    VALUES ('Atelectasis', 1), ('Cardiomegaly', 2), ('Consolidation', 4),
           ('Edema', 8), ('Effusion', 16), ('Emphysema', 32),
           ('Fibrosis', 64), ('Hernia', 128), ('Infiltration', 256),
           ('Mass', 512), ('Nodule', 1024), ('Pleural_Thickening', 2048),
           ('Pneumonia', 4096), ('Pneumothorax', 8192), ('Enlarged_Cardiomediastinum', 16384),
           ('Fracture', 32768), ('Lung_Lesion', 65536), ('Lung_Opacity', 131072)
),
normal(dataset, raw_label) AS (
    VALUES ('nih', 'No Finding'), ('chexpert', 'No Finding'), ('mimic', 'No Finding'),
           ('padchest', 'normal'), ('vindr', 'No finding'), ('openi', 'normal')
),
beside(dataset, raw_label) AS (
    VALUES ('chexpert', 'Support Devices'), ('mimic', 'Support Devices')
),
readers(dataset, source_prefix, vote_prefix) AS (
    VALUES ('vindr', 'vindr_R', 'vindr_')
),
rules(rule) AS (
    VALUES ('any'), ('majority'), ('all')
),
stated AS (
    SELECT l.dataset, l.image_id, l.source,
           CAST(COALESCE(bit_or(CASE WHEN l."value" = 1 THEN f.bit END), 0) AS INT) AS positive,
           CAST(COALESCE(bit_or(CASE WHEN l."value" = -1 THEN f.bit END), 0) AS INT) AS uncertain,
           CAST(COALESCE(bit_or(CASE WHEN l."value" = 0 THEN f.bit END), 0) AS INT) AS negative,
           bool_or(f.bit IS NULL AND n.raw_label IS NOT NULL AND l."value" = 1) AS states_normal,
           bool_or(f.bit IS NULL AND n.raw_label IS NULL AND b.raw_label IS NULL AND l."value" <> 0) AS other_positive
    -- A raw label matches in any case, spaces around it trimmed and runs of them one
    -- (as the label map matches).
    FROM (SELECT *, lower(btrim(regexp_replace(raw_label, '\s+', ' ', 'g'))) AS label_key
          FROM dataset_labels) l
    LEFT JOIN finding f ON f.label = l.finding
    LEFT JOIN normal n ON n.dataset = l.dataset AND lower(n.raw_label) = l.label_key
    LEFT JOIN beside b ON b.dataset = l.dataset AND lower(b.raw_label) = l.label_key
    GROUP BY l.dataset, l.image_id, l.source
),
read_by AS (
    SELECT s.*, r.vote_prefix, COUNT(*) OVER (PARTITION BY s.dataset, s.image_id) AS n
    FROM stated s JOIN readers r ON r.dataset = s.dataset AND starts_with(s.source, r.source_prefix)
),
-- Per image, statement and rule: how many of its n readers make the statement.
counted AS (
    SELECT rd.dataset, rd.image_id, rd.vote_prefix, rd.n, f.bit,
           SUM(CASE WHEN (rd.positive & f.bit) <> 0 THEN 1 ELSE 0 END) AS positive,
           SUM(CASE WHEN (rd.uncertain & f.bit) <> 0 THEN 1 ELSE 0 END) AS uncertain,
           SUM(CASE WHEN (rd.negative & f.bit) <> 0 THEN 1 ELSE 0 END) AS negative,
           SUM(CASE WHEN rd.states_normal THEN 1 ELSE 0 END) AS states_normal,
           SUM(CASE WHEN rd.other_positive THEN 1 ELSE 0 END) AS other_positive
    FROM read_by rd CROSS JOIN finding f
    GROUP BY rd.dataset, rd.image_id, rd.vote_prefix, rd.n, f.bit
),
votes AS (
    SELECT c.dataset, c.image_id, c.vote_prefix || v.rule AS source,
           CAST(COALESCE(bit_or(CASE WHEN
               CASE v.rule WHEN 'any' THEN c.positive >= 1 WHEN 'majority' THEN 2 * c.positive > c.n ELSE c.positive = c.n END
               THEN c.bit END), 0) AS INT) AS positive,
           CAST(COALESCE(bit_or(CASE WHEN
               CASE v.rule WHEN 'any' THEN c.uncertain >= 1 WHEN 'majority' THEN 2 * c.uncertain > c.n ELSE c.uncertain = c.n END
               THEN c.bit END), 0) AS INT) AS uncertain,
           CAST(COALESCE(bit_or(CASE WHEN
               CASE v.rule WHEN 'any' THEN c.negative >= 1 WHEN 'majority' THEN 2 * c.negative > c.n ELSE c.negative = c.n END
               THEN c.bit END), 0) AS INT) AS negative,
           bool_or(CASE v.rule WHEN 'any' THEN c.states_normal >= 1 WHEN 'majority' THEN 2 * c.states_normal > c.n
                   ELSE c.states_normal = c.n END) AS states_normal,
           bool_or(CASE v.rule WHEN 'any' THEN c.other_positive >= 1 WHEN 'majority' THEN 2 * c.other_positive > c.n
                   ELSE c.other_positive = c.n END) AS other_positive
    FROM counted c CROSS JOIN rules v
    GROUP BY c.dataset, c.image_id, c.vote_prefix, v.rule
)
SELECT dataset, image_id, source, positive, uncertain, negative, states_normal, other_positive FROM stated
UNION ALL
SELECT dataset, image_id, source, positive, uncertain, negative, states_normal, other_positive FROM votes
