"""Writes the archives of the per-format pixel benchmark: one tar per format, of
synthetic chest-like images as the datasets ship them (Pillow and pydicom write them).

Usage: formats.py OUT_DIR COUNT

  jpeg-COUNT.tar     512 × 512 grey baseline JPEGs, quality 90 (CheXpert, MIMIC)
  png16-COUNT.tar    512 × 512 16-bit grey PNGs (PadChest)
  dicom-COUNT.tar    512 × 512 DICOMs, 16 bits allocated, 12 stored, MONOCHROME2,
                     explicit VR little endian (VinDr, RSNA, SIIM)
Archives already there are kept.
"""

import io
import os
import sys
import tarfile

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

OUT, COUNT = sys.argv[1], int(sys.argv[2])
SIDE = 512


def chest(seed, top):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    lungs = np.exp(-(((x - SIDE * 0.3) / (SIDE * 0.15)) ** 2 + ((y - SIDE * 0.5) / (SIDE * 0.3)) ** 2))
    lungs += np.exp(-(((x - SIDE * 0.7) / (SIDE * 0.15)) ** 2 + ((y - SIDE * 0.5) / (SIDE * 0.3)) ** 2))
    v = 0.8 - 0.6 * lungs + 0.05 * rng.standard_normal((SIDE, SIDE))
    return np.clip(v * top, 0, top).round()


def jpeg(seed):
    buf = io.BytesIO()
    Image.fromarray(chest(seed, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def png16(seed):
    buf = io.BytesIO()
    Image.fromarray(chest(seed, 65535).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def dicom(seed):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientSex = "DX", "F"
    ds.Rows = ds.Columns = SIDE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = chest(seed, 4095).astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


for name, make, ext in [("jpeg", jpeg, "jpg"), ("png16", png16, "png"), ("dicom", dicom, "dcm")]:
    path = os.path.join(OUT, f"{name}-{COUNT}.tar")
    if os.path.exists(path):
        continue
    # A few distinct images, repeated: the decoders' work is the same per image.
    images = [make(seed) for seed in range(16)]
    with tarfile.open(path + ".part", "w") as tar:
        for k in range(COUNT):
            data = images[k % len(images)]
            info = tarfile.TarInfo(f"images/{k // 1000 + 1:08d}_{k % 1000:03d}.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.rename(path + ".part", path)
