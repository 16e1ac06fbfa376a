-- @description Images and patients per finding (and No Finding), with prevalence over all images.
WITH total AS (SELECT COUNT(*) AS n FROM images)
SELECT label, images, patients, round(100.0 * images / total.n, 2) AS prevalence_pct
FROM (
    SELECT label, COUNT(*) AS images, COUNT(DISTINCT patient_id) AS patients
    FROM findings GROUP BY label
    UNION ALL
    SELECT 'No Finding', COUNT(*), COUNT(DISTINCT patient_id) FROM images WHERE no_finding
) AS t CROSS JOIN total
ORDER BY images DESC;
