-- @description NIH age outliers: images aged min_age or more or with no age, and every age ingest converted or nulled in the metadata file those images' ages come from (data_issues; not the other label release, whose ages no table holds).
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
  AND source_file = (SELECT source_files[1] FROM datasets WHERE dataset = 'nih')
ORDER BY source, line, item;
