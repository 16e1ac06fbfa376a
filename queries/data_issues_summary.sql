-- @description What ingest changed, nulled or refused, grouped by file, column and kind of issue.
SELECT source_file, field,
       regexp_replace(issue, '[0-9]+', 'N', 'g') AS issue_kind,
       COUNT(*) AS rows, MIN(line) AS first_line
FROM data_issues
GROUP BY source_file, field, regexp_replace(issue, '[0-9]+', 'N', 'g')
ORDER BY rows DESC, source_file, field;
