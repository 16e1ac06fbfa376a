-- @description Patients whose first study shows no finding and who later develop a finding: the first study where it appears.
-- @param finding FINDING = Pneumothorax
WITH clean_start AS (
    SELECT patient_id FROM followups WHERE study_rank = 1 AND cardinality(labels) = 0
),
first_positive AS (
    SELECT f.patient_id, MIN(f.study_rank) AS study_rank
    FROM followups f JOIN clean_start c ON f.patient_id = c.patient_id
    WHERE array_has(f.labels, $finding)
    GROUP BY f.patient_id
)
SELECT f.patient_id, f.image_index, f.follow_up, f.study_rank, f.age, f.labels
FROM followups f JOIN first_positive p
  ON f.patient_id = p.patient_id AND f.study_rank = p.study_rank
ORDER BY f.patient_id;
