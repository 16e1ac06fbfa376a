-- @description One patient's studies in order, with the findings that appear and resolve at each.
-- @param patient INT 1.. = 18404
SELECT study_rank, image_index, follow_up, age, labels, new_labels, resolved_labels
FROM followups
WHERE patient_id = $patient
ORDER BY study_rank;
