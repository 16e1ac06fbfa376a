-- cooccurrence: every ordered pair of two different findings (182 rows).
-- {images} names the relation it reads: the images table, or a cohort (any relation
-- with the images table's 14 finding columns).
-- n_a, n_b: images with each finding; n_ab: images with both; N: all images.
-- Each image's finding columns become a 14-bit mask; images are counted per distinct mask (a
-- few hundred at most), and every count is a sum over the masks with the right bits:
-- one pass over the images, no join of findings with themselves.
WITH finding(label, bit) AS (
    VALUES ('Atelectasis', 1), ('Cardiomegaly', 2), ('Consolidation', 4), ('Edema', 8),
           ('Effusion', 16), ('Emphysema', 32), ('Fibrosis', 64), ('Hernia', 128),
           ('Infiltration', 256), ('Mass', 512), ('Nodule', 1024),
           ('Pleural_Thickening', 2048), ('Pneumonia', 4096), ('Pneumothorax', 8192)
),
masks AS (
    SELECT mask, COUNT(*) AS n
    FROM (
        SELECT CASE WHEN atelectasis THEN 1 ELSE 0 END
             + CASE WHEN cardiomegaly THEN 2 ELSE 0 END
             + CASE WHEN consolidation THEN 4 ELSE 0 END
             + CASE WHEN edema THEN 8 ELSE 0 END
             + CASE WHEN effusion THEN 16 ELSE 0 END
             + CASE WHEN emphysema THEN 32 ELSE 0 END
             + CASE WHEN fibrosis THEN 64 ELSE 0 END
             + CASE WHEN hernia THEN 128 ELSE 0 END
             + CASE WHEN infiltration THEN 256 ELSE 0 END
             + CASE WHEN mass THEN 512 ELSE 0 END
             + CASE WHEN nodule THEN 1024 ELSE 0 END
             + CASE WHEN pleural_thickening THEN 2048 ELSE 0 END
             + CASE WHEN pneumonia THEN 4096 ELSE 0 END
             + CASE WHEN pneumothorax THEN 8192 ELSE 0 END AS mask
        FROM {images}
    ) AS labelled
    GROUP BY mask
),
total AS (SELECT CAST(COALESCE(SUM(n), 0) AS DOUBLE) AS n FROM masks),
per_label AS (
    SELECT f.label, COALESCE(SUM(m.n), 0) AS n
    FROM finding f LEFT JOIN masks m ON (m.mask & f.bit) <> 0
    GROUP BY f.label
),
pair AS (
    SELECT a.label AS label_a, b.label AS label_b, COALESCE(SUM(m.n), 0) AS n_ab
    FROM finding a
    JOIN finding b ON a.label <> b.label
    LEFT JOIN masks m ON (m.mask & a.bit) <> 0 AND (m.mask & b.bit) <> 0
    GROUP BY a.label, b.label
)
SELECT a.label AS label_a,
       b.label AS label_b,
       a.n AS n_a,
       b.n AS n_b,
       p.n_ab AS n_ab,
       CAST(p.n_ab AS DOUBLE) / NULLIF(a.n, 0) AS p_b_given_a,
       CAST(p.n_ab AS DOUBLE) / NULLIF(a.n + b.n - p.n_ab, 0) AS jaccard,
       CAST(p.n_ab AS DOUBLE) * total.n / NULLIF(CAST(a.n AS DOUBLE) * b.n, 0) AS lift
FROM pair p
JOIN per_label a ON a.label = p.label_a
JOIN per_label b ON b.label = p.label_b
CROSS JOIN total
