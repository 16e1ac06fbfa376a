-- @description Patients whose images fall in more than one split (0 rows means no leakage).
SELECT patient_id, COUNT(DISTINCT split) AS splits, COUNT(*) AS images,
       array_agg(DISTINCT split) AS split_names
FROM images
WHERE split IS NOT NULL
GROUP BY patient_id
HAVING COUNT(DISTINCT split) > 1
ORDER BY patient_id;
