-- @description Per dataset and finding: images, images labelled positive by the dataset's sources, and prevalence (%).
-- @param dataset DATASET = any
WITH img AS (
    SELECT dataset, COUNT(*) AS images FROM xr_images
    WHERE $dataset = 'any' OR dataset = $dataset
    GROUP BY dataset
),
pos AS (
    SELECT dataset, finding, COUNT(DISTINCT image_id) AS positive
    FROM xr_labels
    WHERE "value" = 1 AND finding IS NOT NULL
      AND source NOT IN ('nih_2017', 'google_2019')
      AND ($dataset = 'any' OR dataset = $dataset)
    GROUP BY dataset, finding
)
SELECT p.dataset, p.finding, i.images, p.positive,
       round(100.0 * p.positive / i.images, 2) AS prevalence_pct
FROM pos p JOIN img i ON i.dataset = p.dataset
ORDER BY p.dataset, prevalence_pct DESC, p.finding;
