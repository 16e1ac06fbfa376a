-- @description Radiologist boxes for one finding ('any' for all) in both 1024- and 224-pixel coordinates, with the image's view and labels.
-- @param finding FINDING = any
SELECT b.image_index, b.patient_id, b.label, i.view_position, i.labels,
       round(b.x, 1) AS x, round(b.y, 1) AS y, round(b.w, 1) AS w, round(b.h, 1) AS h,
       round(b.x_224, 2) AS x_224, round(b.y_224, 2) AS y_224,
       round(b.w_224, 2) AS w_224, round(b.h_224, 2) AS h_224
FROM bboxes b JOIN images i ON i.image_index = b.image_index
WHERE $finding = 'any' OR b.label = $finding
ORDER BY b.label, b.image_index;
