-- finding_states: per image and label source, the findings the source states positive,
-- uncertain and negative, as bit masks over the 18 findings (bit k is the k-th finding of
-- docs/DATASETS.md's vocabulary, in the order below); whether the source states the image
-- normal (the dataset's own normal label, `normal` below, with value 1); whether it states
-- a label outside the 18 positive or uncertain (other than a normal label or one allowed
-- beside it, `beside` below). One row per (image, source) with any label.
-- Ingest writes this table from the label rows (`src/ingest/xr.rs`, with the lists of
-- `src/datasets/mod.rs`); this SQL is its definition, registered as a view on a warehouse
-- written before the table existed, and a test checks the two agree.
WITH finding(label, bit) AS (
    VALUES ('Atelectasis', 1), ('Cardiomegaly', 2), ('Consolidation', 4),
           ('Edema', 8), ('Effusion', 16), ('Emphysema', 32),
           ('Fibrosis', 64), ('Hernia', 128), ('Infiltration', 256),
           ('Mass', 512), ('Nodule', 1024), ('Pleural_Thickening', 2048),
           ('Pneumonia', 4096), ('Pneumothorax', 8192), ('Enlarged_Cardiomediastinum', 16384),
           ('Fracture', 32768), ('Lung_Lesion', 65536), ('Lung_Opacity', 131072)
),
normal(dataset, raw_label) AS (
    VALUES ('nih', 'No Finding'), ('chexpert', 'No Finding'), ('mimic', 'No Finding'),
           ('padchest', 'normal'), ('vindr', 'No finding'), ('openi', 'normal')
),
beside(dataset, raw_label) AS (
    VALUES ('chexpert', 'Support Devices'), ('mimic', 'Support Devices')
)
SELECT l.dataset, l.image_id, l.source,
       CAST(COALESCE(bit_or(CASE WHEN l."value" = 1 THEN f.bit END), 0) AS INT) AS positive,
       CAST(COALESCE(bit_or(CASE WHEN l."value" = -1 THEN f.bit END), 0) AS INT) AS uncertain,
       CAST(COALESCE(bit_or(CASE WHEN l."value" = 0 THEN f.bit END), 0) AS INT) AS negative,
       bool_or(f.bit IS NULL AND n.raw_label IS NOT NULL AND l."value" = 1) AS states_normal,
       bool_or(f.bit IS NULL AND n.raw_label IS NULL AND b.raw_label IS NULL AND l."value" <> 0) AS other_positive
FROM xr_labels l
LEFT JOIN finding f ON f.label = l.finding
LEFT JOIN normal n ON n.dataset = l.dataset AND n.raw_label = l.raw_label
LEFT JOIN beside b ON b.dataset = l.dataset AND b.raw_label = l.raw_label
GROUP BY l.dataset, l.image_id, l.source
