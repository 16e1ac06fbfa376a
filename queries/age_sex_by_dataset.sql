-- @description Per dataset: images, patients (NULL where the release gives no patient id), share of women, age quartiles (images with a known age) and views.
WITH ages AS (
    SELECT dataset, age, ROW_NUMBER() OVER (PARTITION BY dataset ORDER BY age) AS r,
           COUNT(*) OVER (PARTITION BY dataset) AS n
    FROM dataset_images WHERE age IS NOT NULL
),
q AS (
    SELECT dataset,
           MIN(CASE WHEN r * 4 >= n THEN age END) AS age_q1,
           MIN(CASE WHEN r * 2 >= n THEN age END) AS age_median,
           MIN(CASE WHEN r * 4 >= n * 3 THEN age END) AS age_q3
    FROM ages GROUP BY dataset
)
SELECT i.dataset,
       COUNT(*) AS images,
       NULLIF(COUNT(DISTINCT i.patient_id), 0) AS patients,
       round(100.0 * SUM(CASE WHEN i.sex = 'F' THEN 1 ELSE 0 END) / NULLIF(SUM(CASE WHEN i.sex IS NOT NULL THEN 1 ELSE 0 END), 0), 2) AS female_pct,
       SUM(CASE WHEN i.sex IS NULL THEN 1 ELSE 0 END) AS sex_unknown,
       MAX(q.age_q1) AS age_q1, MAX(q.age_median) AS age_median, MAX(q.age_q3) AS age_q3,
       SUM(CASE WHEN i.frontal THEN 1 ELSE 0 END) AS frontal,
       SUM(CASE WHEN i.view = 'LATERAL' THEN 1 ELSE 0 END) AS lateral
FROM dataset_images i LEFT JOIN q ON q.dataset = i.dataset
GROUP BY i.dataset
ORDER BY images DESC;
