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
counts AS (
    -- masks is read once: DataFusion would scan the images again for each reference.
    SELECT a.label AS label_a,
           b.label AS label_b,
           COALESCE(SUM(CASE WHEN (m.mask & a.bit) <> 0 THEN m.n ELSE 0 END), 0) AS n_a,
           COALESCE(SUM(CASE WHEN (m.mask & b.bit) <> 0 THEN m.n ELSE 0 END), 0) AS n_b,
           COALESCE(SUM(CASE WHEN (m.mask & a.bit) <> 0 AND (m.mask & b.bit) <> 0 THEN m.n ELSE 0 END), 0) AS n_ab,
           CAST(COALESCE(SUM(m.n), 0) AS DOUBLE) AS total
    FROM finding a
    JOIN finding b ON a.label <> b.label
    LEFT JOIN masks m ON true
    GROUP BY a.label, b.label
)
SELECT label_a,
       label_b,
       n_a,
       n_b,
       n_ab,
       CAST(n_ab AS DOUBLE) / NULLIF(n_a, 0) AS p_b_given_a,
       CAST(n_ab AS DOUBLE) / NULLIF(n_a + n_b - n_ab, 0) AS jaccard,
       CAST(n_ab AS DOUBLE) * total / NULLIF(CAST(n_a AS DOUBLE) * n_b, 0) AS lift
FROM counts
