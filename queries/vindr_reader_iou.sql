-- @description VinDr-CXR: per finding, boxes two different radiologists drew on the same image, and their intersection over union (mean, share >= 0.5).
WITH b AS (
    SELECT image_id, raw_label, reader, x, y, w, h,
           ROW_NUMBER() OVER (ORDER BY image_id, raw_label, reader, x, y) AS id
    FROM dataset_boxes WHERE dataset = 'vindr'
),
pairs AS (
    SELECT p.raw_label,
           GREATEST(0.0, LEAST(p.x + p.w, q.x + q.w) - GREATEST(p.x, q.x))
         * GREATEST(0.0, LEAST(p.y + p.h, q.y + q.h) - GREATEST(p.y, q.y)) AS inter,
           p.w * p.h + q.w * q.h AS areas
    FROM b p JOIN b q
      ON p.image_id = q.image_id AND p.raw_label = q.raw_label AND p.reader < q.reader
),
iou AS (SELECT raw_label, inter / NULLIF(areas - inter, 0) AS iou FROM pairs)
SELECT raw_label AS finding, COUNT(*) AS box_pairs,
       round(AVG(iou), 4) AS mean_iou,
       round(100.0 * AVG(CASE WHEN iou >= 0.5 THEN 1.0 ELSE 0.0 END), 2) AS pct_iou_ge_0_5
FROM iou GROUP BY raw_label
ORDER BY box_pairs DESC;
