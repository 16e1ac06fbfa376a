-- @description NIH label revision: per finding, images the 2020 labels add or drop compared with the 2017 labels, over the images both releases label (no rows when one release was not ingested: `cxr ingest` ingests both by default).
WITH both_releases AS (
  SELECT image_id FROM dataset_labels
  WHERE dataset = 'nih' AND source IN ('nih_2017', 'nih_2020')
  GROUP BY image_id HAVING COUNT(DISTINCT source) = 2),
l17 AS (SELECT l.image_id, l.finding FROM dataset_labels l JOIN both_releases b ON b.image_id = l.image_id
        WHERE l.dataset = 'nih' AND l.source = 'nih_2017' AND l.finding IS NOT NULL),
l20 AS (SELECT l.image_id, l.finding FROM dataset_labels l JOIN both_releases b ON b.image_id = l.image_id
        WHERE l.dataset = 'nih' AND l.source = 'nih_2020' AND l.finding IS NOT NULL),
gained AS (SELECT * FROM l20 EXCEPT SELECT * FROM l17),
lost AS (SELECT * FROM l17 EXCEPT SELECT * FROM l20)
SELECT 'gained' AS change, finding, COUNT(*) AS images FROM gained GROUP BY finding
UNION ALL
SELECT 'lost', finding, COUNT(*) FROM lost GROUP BY finding
UNION ALL
SELECT 'images gaining a label', '(any)', COUNT(DISTINCT g.image_id)
FROM both_releases b LEFT JOIN gained g ON g.image_id = b.image_id
HAVING COUNT(b.image_id) > 0
ORDER BY change, images DESC, finding;
