-- followups: one row per image in each patient's study order (by follow_up).
-- prev_labels, new_labels and resolved_labels are NULL on a patient's first study.
-- {images} names the relation it reads: the images table, or a cohort.
WITH ordered AS (
    SELECT patient_id, image_index, follow_up, age, labels,
           CAST(ROW_NUMBER() OVER w AS INT) AS study_rank,
           LAG(labels) OVER w AS prev_labels
    FROM {images}
    WINDOW w AS (PARTITION BY patient_id ORDER BY follow_up, image_index)
)
SELECT patient_id, image_index, follow_up, study_rank, age, labels, prev_labels,
       CASE WHEN study_rank = 1 THEN NULL ELSE array_except(labels, prev_labels) END AS new_labels,
       CASE WHEN study_rank = 1 THEN NULL ELSE array_except(prev_labels, labels) END AS resolved_labels
FROM ordered
