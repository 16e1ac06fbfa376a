-- @description What ingest changed, nulled or refused, grouped by file, column, kind of issue and action.
SELECT source_file, field,
       regexp_replace(issue, '[0-9]+', 'N', 'g') AS issue_kind, action,
       COUNT(*) AS rows, MIN(line) AS first_line
FROM data_issues
GROUP BY source_file, field, regexp_replace(issue, '[0-9]+', 'N', 'g'), action
ORDER BY rows DESC, source_file, field;
