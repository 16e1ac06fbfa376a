-- @description Per finding, how often it appears and resolves between a patient's consecutive studies.
WITH appeared AS (
    SELECT unnest(new_labels) AS label FROM followups WHERE new_labels IS NOT NULL
),
resolved AS (
    SELECT unnest(resolved_labels) AS label FROM followups WHERE resolved_labels IS NOT NULL
),
a AS (SELECT label, COUNT(*) AS n FROM appeared GROUP BY label),
r AS (SELECT label, COUNT(*) AS n FROM resolved GROUP BY label)
SELECT COALESCE(a.label, r.label) AS label,
       COALESCE(a.n, 0) AS appeared,
       COALESCE(r.n, 0) AS resolved
FROM a FULL OUTER JOIN r ON a.label = r.label
ORDER BY appeared DESC, label;
