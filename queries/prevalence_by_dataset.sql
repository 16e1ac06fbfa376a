-- @description Per dataset and finding it labels: images, images whose state is known (the denominator: labelled by one of the dataset's sources, not uncertain), positive images and prevalence (% of known), from the states ingest stores in dataset_images (every source; NIH: the warehouse's own release).
-- @param dataset DATASET = any
WITH finding(label, bit) AS (
    VALUES ('Atelectasis', 1), ('Cardiomegaly', 2), ('Consolidation', 4), ('Edema', 8),
           ('Effusion', 16), ('Emphysema', 32), ('Fibrosis', 64), ('Hernia', 128),
           ('Infiltration', 256), ('Mass', 512), ('Nodule', 1024), ('Pleural_Thickening', 2048),
           ('Pneumonia', 4096), ('Pneumothorax', 8192), ('Enlarged_Cardiomediastinum', 16384), ('Fracture', 32768),
           ('Lung_Lesion', 65536), ('Lung_Opacity', 131072)
),
masks AS (
    SELECT dataset, positive_findings AS p, uncertain_findings AS u, known_findings AS k,
           COUNT(*) AS n, SUM(COUNT(*)) OVER (PARTITION BY dataset) AS images
    FROM dataset_images
    WHERE $dataset = 'any' OR dataset = $dataset
    GROUP BY dataset, positive_findings, uncertain_findings, known_findings
),
counts AS (
    SELECT m.dataset, f.label AS finding, MAX(m.images) AS images,
           SUM(CASE WHEN (m.k & f.bit) <> 0 AND ((m.p & f.bit) <> 0 OR (m.u & f.bit) = 0) THEN m.n ELSE 0 END) AS known,
           SUM(CASE WHEN (m.p & f.bit) <> 0 THEN m.n ELSE 0 END) AS positive
    FROM masks m CROSS JOIN finding f
    GROUP BY m.dataset, f.label
)
SELECT dataset, finding, images, known, positive,
       round(100.0 * positive / known, 2) AS prevalence_pct
FROM counts
WHERE known > 0
ORDER BY dataset, prevalence_pct DESC, finding;
