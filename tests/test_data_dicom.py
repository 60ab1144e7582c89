"""Real DICOM slices from pydicom's bundled test files, in the common schema."""

import numpy as np
import pydicom
import pytest

from medgap_utils.data import CORPUS_FEATURES, validate_corpus
from medgap_utils.data.dicom import CT_DEFAULT_WINDOW, load_dicom_slices, pydicom_test_file


@pytest.fixture(scope="module")
def slices():
    return load_dicom_slices()


def test_default_slices_are_real_ct_and_mr(slices):
    assert slices["image_id"] == ["CT_small", "MR_small", "examples_overlay"]
    assert slices["modality"] == ["CT", "MRI", "MRI"]
    assert slices["anatomy"] == ["unknown", "unknown", "abdomen"]


def test_slices_share_common_schema(slices):
    for column, feature in CORPUS_FEATURES.items():
        assert slices.features[column] == feature
    validate_corpus(slices)


def test_ct_is_rescaled_to_hounsfield_and_windowed(slices):
    """Pixels equal an independent computation: HU = raw * slope + intercept, then the soft-tissue window."""
    header = pydicom.dcmread(pydicom_test_file("CT_small.dcm"))
    hounsfield = header.pixel_array.astype(np.float64) * float(header.RescaleSlope) + float(header.RescaleIntercept)
    center, width = CT_DEFAULT_WINDOW
    expected = np.round(np.clip((hounsfield - (center - width / 2)) / width, 0, 1) * 255)
    image = np.asarray(slices[0]["image"], dtype=np.float64)
    assert image.shape == hounsfield.shape
    assert np.abs(image - expected).max() <= 1


def test_mr_uses_header_window(slices):
    header = pydicom.dcmread(pydicom_test_file("MR_small.dcm"))
    center, width = float(header.WindowCenter), float(header.WindowWidth)
    expected = np.round(np.clip((header.pixel_array.astype(np.float64) - (center - width / 2)) / width, 0, 1) * 255)
    assert np.abs(np.asarray(slices[1]["image"], dtype=np.float64) - expected).max() <= 1


def test_non_square_slice_is_padded_to_square(slices):
    image = slices[2]["image"]
    assert image.size == (484, 484)
    pixels = np.asarray(image)
    assert pixels[:40].max() == 0
    assert pixels[-40:].max() == 0


def test_captions_come_from_headers(slices):
    ct, mr, abdomen = slices["caption"]
    assert ct == "Axial CT image, slice thickness 5 mm, 120 kVp."
    assert mr.startswith("Axial T2-weighted MR image")
    assert "TR 4000 ms, TE 240 ms" in mr
    assert abdomen.startswith("Axial T1-weighted MR image of the abdomen (liver)")
    assert "marked lesion" in abdomen


def test_color_ultrasound_files_become_rgb():
    dataset = load_dicom_slices(["examples_rgb_color.dcm", "examples_palette.dcm"])
    assert dataset["modality"] == ["ultrasound", "ultrasound"]
    for image in dataset["image"]:
        assert image.mode == "RGB"
        assert np.asarray(image).max() > 0


def test_compressed_transfer_syntax_reads_same_pixels():
    plain, rle = load_dicom_slices(["MR_small.dcm", "MR_small_RLE.dcm"])["image"]
    assert np.array_equal(np.asarray(plain), np.asarray(rle))


def test_missing_file_raises():
    with pytest.raises(FileNotFoundError, match="no_such_file"):
        load_dicom_slices(["no_such_file.dcm"])


def test_non_dicom_file_raises(tmp_path):
    path = tmp_path / "not_dicom.dcm"
    path.write_bytes(b"this is not a DICOM file")
    with pytest.raises(ValueError, match="not_dicom.dcm"):
        load_dicom_slices([path])


def test_truncated_pixel_data_raises():
    with pytest.raises(ValueError, match="MR_truncated"):
        load_dicom_slices(["MR_truncated.dcm"])
