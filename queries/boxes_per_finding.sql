-- @description Box counts per finding with the mean box size in 224-pixel coordinates.
SELECT label, COUNT(*) AS boxes, COUNT(DISTINCT image_index) AS images,
       round(AVG(w_224), 1) AS mean_w_224, round(AVG(h_224), 1) AS mean_h_224
FROM bboxes
GROUP BY label
ORDER BY boxes DESC, label;
