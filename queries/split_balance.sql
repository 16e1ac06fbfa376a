-- @description Official split balance: images, patients and the prevalence of every finding in train_val and test.
WITH totals AS (
    SELECT split, COUNT(*) AS images, COUNT(DISTINCT patient_id) AS patients
    FROM images GROUP BY split
),
per_label AS (
    SELECT i.split, f.label, COUNT(*) AS n
    FROM findings f JOIN images i ON i.image_index = f.image_index
    GROUP BY i.split, f.label
)
SELECT p.label, t.split, t.images, t.patients, p.n,
       round(100.0 * p.n / t.images, 2) AS prevalence_pct
FROM per_label p JOIN totals t ON p.split IS NOT DISTINCT FROM t.split
ORDER BY p.label, t.split;
