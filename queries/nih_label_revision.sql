-- @description NIH label revision: per finding, images the 2020 labels add or drop compared with the 2017 labels (needs both releases ingested: the default).
WITH l17 AS (SELECT image_id, finding FROM dataset_labels WHERE source = 'nih_2017' AND finding IS NOT NULL),
l20 AS (SELECT image_id, finding FROM dataset_labels WHERE source = 'nih_2020' AND finding IS NOT NULL),
gained AS (SELECT * FROM l20 EXCEPT SELECT * FROM l17),
lost AS (SELECT * FROM l17 EXCEPT SELECT * FROM l20)
SELECT 'gained' AS change, finding, COUNT(*) AS images FROM gained GROUP BY finding
UNION ALL
SELECT 'lost', finding, COUNT(*) FROM lost GROUP BY finding
UNION ALL
SELECT 'images gaining a label', '(any)', COUNT(DISTINCT image_id) FROM gained
ORDER BY change, images DESC, finding;
