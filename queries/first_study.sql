-- @description One image per patient: the lowest follow-up among the patient's images of a view ('any' for all); TorchXRayVision's default is PA.
-- @param view VIEW = PA
SELECT image_index, patient_id, follow_up, age, sex, view_position, labels, split
FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) AS rn
    FROM images
    WHERE $view = 'any' OR view_position = $view
) AS t
WHERE rn = 1
ORDER BY patient_id;
