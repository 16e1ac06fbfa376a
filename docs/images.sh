#!/bin/sh
# Draws the images README shows, from the shipped NIH files, so that they are never
# stale: run it after changing a plot (`cargo build --release` first). A test draws
# them again and compares. boxes.png also needs RSNA's and SIIM's files, read from
# ../shared/datasets when present (their licences keep them out of the repository).
#
#   docs/images.sh [OUT_DIR]      (default: docs)
set -eu
cxr=${CXR_BIN:-target/release/cxr}
out=${1:-docs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cxr" ingest --no-images -w "$work/wh" > /dev/null
"$cxr" plot cooccurrence --metric lift -w "$work/wh" --out "$out/cooccurrence-lift.svg"
"$cxr" plot age --with Effusion --size 900x500 -w "$work/wh" --out "$out/age-effusion.svg"
"$cxr" plot labels --view PA --size 900x500 -w "$work/wh" --out "$out/labels-pa.svg"
shared=../shared/datasets
if [ -f "$shared/kaggle_stage_2_train_labels.csv.zip" ] && [ -f "$shared/siim-pneumothorax-train-rle.csv.gz" ]; then
    "$cxr" ingest --no-images -w "$work/wh" \
        --dataset "rsna=$shared/kaggle_stage_2_train_labels.csv.zip,$shared/kaggle_stage_2_train_images_dicom_headers.csv.gz" \
        --dataset "siim=$shared/siim-pneumothorax-train-rle.csv.gz" > /dev/null
    "$cxr" plot boxes -w "$work/wh" --out "$out/boxes.png"
fi
