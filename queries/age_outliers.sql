-- @description Age outliers: images aged min_age or more or with no age, and every age that ingest converted or nulled (from data_issues).
-- @param min_age INT 0.. = 90
SELECT 'images' AS source, image_index AS item, CAST(age AS VARCHAR) AS age,
       CAST(NULL AS BIGINT) AS line,
       CASE WHEN age IS NULL THEN 'age is NULL' ELSE 'age at or above min_age' END AS note
FROM images
WHERE age IS NULL OR age >= $min_age
UNION ALL
SELECT source_file, value, NULL, line, issue
FROM data_issues
WHERE field = 'Patient Age'
ORDER BY source, line, item;
