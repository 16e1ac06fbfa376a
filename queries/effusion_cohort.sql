-- @description Cohort: images with one finding and without another ('none' excludes nothing), by sex, age range and view ('any' matches every sex or view).
-- @param finding FINDING = Effusion
-- @param exclude FINDING = Pneumothorax
-- @param sex SEX = any
-- @param min_age INT 0.. = 0
-- @param max_age INT 0.. = 120
-- @param view VIEW = any
SELECT image_index, patient_id, follow_up, age, sex, view_position, labels, split
FROM images
WHERE array_has(labels, $finding)
  AND ($exclude = '' OR NOT array_has(labels, $exclude))
  AND ($sex = 'any' OR sex = $sex)
  AND age BETWEEN $min_age AND $max_age
  AND ($view = 'any' OR view_position = $view)
ORDER BY patient_id, follow_up;
