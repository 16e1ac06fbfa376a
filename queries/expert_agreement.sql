-- @description NLP-mined labels against Google's radiologist-adjudicated labels: agreement, sensitivity and Cohen's kappa per finding.
WITH pairs AS (
    SELECT 'pneumothorax' AS finding, array_has(i.labels, 'Pneumothorax') AS nlp, e.pneumothorax AS expert
    FROM expert_labels e JOIN images i ON i.image_index = e.image_index
    UNION ALL
    SELECT 'nodule_or_mass', array_has(i.labels, 'Nodule') OR array_has(i.labels, 'Mass'), e.nodule_or_mass
    FROM expert_labels e JOIN images i ON i.image_index = e.image_index
    UNION ALL
    SELECT 'airspace_opacity',
           array_has(i.labels, 'Consolidation') OR array_has(i.labels, 'Pneumonia') OR array_has(i.labels, 'Infiltration'),
           e.airspace_opacity
    FROM expert_labels e JOIN images i ON i.image_index = e.image_index
),
counts AS (
    SELECT finding,
           COUNT(*) AS n,
           SUM(CASE WHEN nlp AND expert THEN 1 ELSE 0 END) AS both_pos,
           SUM(CASE WHEN nlp AND NOT expert THEN 1 ELSE 0 END) AS nlp_only,
           SUM(CASE WHEN expert AND NOT nlp THEN 1 ELSE 0 END) AS expert_only,
           SUM(CASE WHEN NOT nlp AND NOT expert THEN 1 ELSE 0 END) AS both_neg
    FROM pairs WHERE expert IS NOT NULL AND nlp IS NOT NULL
    GROUP BY finding
)
SELECT finding, n, both_pos, nlp_only, expert_only, both_neg,
       round(CAST(both_pos + both_neg AS DOUBLE) / n, 4) AS agreement,
       round(CAST(both_pos AS DOUBLE) / NULLIF(both_pos + expert_only, 0), 4) AS nlp_sensitivity,
       round(((CAST(both_pos + both_neg AS DOUBLE) / n)
              - ((CAST(both_pos + nlp_only AS DOUBLE) * (both_pos + expert_only)
                  + CAST(expert_only + both_neg AS DOUBLE) * (nlp_only + both_neg)) / (CAST(n AS DOUBLE) * n)))
             / NULLIF(1 - ((CAST(both_pos + nlp_only AS DOUBLE) * (both_pos + expert_only)
                  + CAST(expert_only + both_neg AS DOUBLE) * (nlp_only + both_neg)) / (CAST(n AS DOUBLE) * n)), 0), 4) AS kappa
FROM counts
ORDER BY finding;
