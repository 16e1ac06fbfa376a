-- cooccurrence: every ordered pair of two different findings (182 rows).
-- {images} and {findings} name the relations it reads: the tables, or a cohort.
-- n_a, n_b: images with each finding; n_ab: images with both; N: all images.
WITH finding(label) AS (
    VALUES ('Atelectasis'), ('Cardiomegaly'), ('Consolidation'), ('Edema'),
           ('Effusion'), ('Emphysema'), ('Fibrosis'), ('Hernia'), ('Infiltration'),
           ('Mass'), ('Nodule'), ('Pleural_Thickening'), ('Pneumonia'), ('Pneumothorax')
),
total AS (SELECT CAST(COUNT(*) AS DOUBLE) AS n FROM {images}),
per_label AS (
    SELECT f.label, COUNT(x.image_index) AS n
    FROM finding f LEFT JOIN {findings} x ON x.label = f.label
    GROUP BY f.label
),
pair AS (
    SELECT a.label AS label_a, b.label AS label_b, COUNT(*) AS n_ab
    FROM {findings} a JOIN {findings} b
      ON a.image_index = b.image_index AND a.label <> b.label
    GROUP BY a.label, b.label
)
SELECT a.label AS label_a,
       b.label AS label_b,
       a.n AS n_a,
       b.n AS n_b,
       COALESCE(p.n_ab, 0) AS n_ab,
       CAST(COALESCE(p.n_ab, 0) AS DOUBLE) / NULLIF(a.n, 0) AS p_b_given_a,
       CAST(COALESCE(p.n_ab, 0) AS DOUBLE) / NULLIF(a.n + b.n - COALESCE(p.n_ab, 0), 0) AS jaccard,
       CAST(COALESCE(p.n_ab, 0) AS DOUBLE) * total.n / NULLIF(CAST(a.n AS DOUBLE) * b.n, 0) AS lift
FROM per_label a
CROSS JOIN per_label b
CROSS JOIN total
LEFT JOIN pair p ON p.label_a = a.label AND p.label_b = b.label
WHERE a.label <> b.label
