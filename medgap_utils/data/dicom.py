"""Real scanner images: DICOM slices read with pydicom, in the common corpus schema.

pydicom ships de-identified CT, MR and ultrasound images among its test
files. :func:`load_dicom_slices` reads them (or any DICOM files you pass),
applies the modality LUT (rescale slope and intercept, so CT values are in
Hounsfield units), then a display window: the file's own window when its
header has one, else a soft-tissue window (center 40 HU, width 400 HU) for
CT and the 1st-99th percentile range for other modalities. Captions are
built from the header (modality, plane, slice thickness, sequence timing,
body part and descriptions), so they state only what the header records.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from .schema import CORPUS_FEATURES

logger = logging.getLogger(__name__)

#: The pydicom test files read by default: an axial CT slice, a small MR
#: image and an axial abdominal MR slice.
DEFAULT_FILES = ("CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm")

#: Soft-tissue window for CT headers without one (center, width) in HU.
CT_DEFAULT_WINDOW = (40.0, 400.0)

_MODALITY_NAMES = {"CT": "CT", "MR": "MRI", "US": "ultrasound", "CR": "radiograph", "DX": "radiograph"}

DICOM_FEATURES = datasets.Features(
    {
        **CORPUS_FEATURES,
        "modality": datasets.Value("string"),
        "anatomy": datasets.Value("string"),
        "source_file": datasets.Value("string"),
    }
)


def pydicom_test_file(name: str) -> Path:
    """Return the path of one of pydicom's bundled test files, without any download.

    ``pydicom.data.get_testdata_file`` may download files that are not
    bundled, so the bundled folder is read directly.

    Raises:
        FileNotFoundError: if pydicom does not bundle a file of that name.
    """
    import pydicom.data

    path = Path(pydicom.data.__file__).parent / "test_files" / name
    if not path.is_file():
        raise FileNotFoundError(f"pydicom {pydicom.__version__} bundles no test file named {name!r} (looked in {path.parent}).")
    return path


def _first(value):
    if isinstance(value, (list, tuple)) or value.__class__.__name__ == "MultiValue":
        return value[0]
    return value


def _plane(dataset) -> str | None:
    orientation = dataset.get("ImageOrientationPatient")
    if orientation is None or len(orientation) != 6:
        return None
    normal = np.cross(np.asarray(orientation[:3], dtype=float), np.asarray(orientation[3:], dtype=float))
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _number(value) -> str:
    number = float(value)
    return f"{number:g}"


def _mr_weighting(dataset) -> str | None:
    """T1/T2 weighting from TR and TE (ms), by the usual rule of thumb; None when neither applies."""
    try:
        repetition, echo = float(dataset.RepetitionTime), float(dataset.EchoTime)
    except (AttributeError, TypeError, ValueError):
        return None
    if repetition >= 1500 and echo >= 60:
        return "T2-weighted"
    if repetition <= 800 and echo <= 30:
        return "T1-weighted"
    return None


def _anatomy(dataset) -> str:
    body_part = str(dataset.get("BodyPartExamined", "") or "").strip().lower()
    return body_part or "unknown"


def caption_from_header(dataset) -> str:
    """Write a short caption from a DICOM header, stating only what the header records."""
    modality = _MODALITY_NAMES.get(dataset.get("Modality", ""), str(dataset.get("Modality", "image")))
    parts = []
    plane = _plane(dataset)
    weighting = _mr_weighting(dataset) if modality == "MRI" else None
    noun = {"MRI": "MR image", "CT": "CT image", "ultrasound": "ultrasound image"}.get(modality, f"{modality} image")
    head = " ".join(word for word in (plane, weighting, noun) if word)
    head = head[:1].upper() + head[1:]
    anatomy = _anatomy(dataset)
    if anatomy != "unknown":
        head += f" of the {anatomy}"
    # Study descriptions often repeat the body part ("abdomen^liver"); keep only the new words.
    study_words = [word for word in re.split(r"[\^\s]+", str(dataset.get("StudyDescription", "") or ""))
                   if re.fullmatch(r"[A-Za-z]{3,}", word) and word.lower() != anatomy]
    if study_words:
        head += f" ({' '.join(study_words)})"
    parts.append(head)

    if dataset.get("SliceThickness"):
        parts.append(f"slice thickness {_number(dataset.SliceThickness)} mm")
    if modality == "CT" and dataset.get("KVP"):
        parts.append(f"{_number(dataset.KVP)} kVp")
    if modality == "MRI" and dataset.get("RepetitionTime") and dataset.get("EchoTime"):
        sequence = {"SE": "spin echo", "GR": "gradient echo", "IR": "inversion recovery"}.get(
            str(_first(dataset.get("ScanningSequence", ""))), "")
        timing = f"TR {_number(dataset.RepetitionTime)} ms, TE {_number(dataset.EchoTime)} ms"
        parts.append(f"{sequence} {timing}".strip())
    image_type = dataset.get("ImageType")
    if modality == "ultrasound" and image_type is not None and len(image_type) > 2 and image_type[2]:
        parts.append(str(image_type[2]).lower())
    series = re.sub(r"<[^>]*>", "", str(dataset.get("SeriesDescription", "") or "")).strip()
    if series:
        parts.append(series)
    return ", ".join(parts) + "."


def _window(dataset, values: np.ndarray) -> tuple[float, float]:
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is not None and width is not None:
        return float(_first(center)), float(_first(width))
    if dataset.get("Modality") == "CT":
        return CT_DEFAULT_WINDOW
    low, high = np.percentile(values, [1, 99])
    return float((low + high) / 2), float(max(high - low, 1e-6))


def dicom_to_image(dataset, square: bool = True) -> Image.Image:
    """Convert a pydicom dataset's first frame to an 8-bit PIL image (L, or RGB for color data).

    Grayscale data goes through the modality LUT and a display window (see
    the module docstring); MONOCHROME1 is inverted so that dense is white.
    Palette and YBR color data are converted to RGB. With ``square`` the
    image is padded with black to a square, centered.

    Raises:
        ValueError: if the file has no pixel data or it cannot be decoded.
    """
    from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space

    if "PixelData" not in dataset:
        raise ValueError("the DICOM file has no pixel data")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises several types for missing decoders
        raise ValueError(f"cannot decode the pixel data: {error}") from error
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[0]

    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, dataset).astype(np.float64)
        bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])
        image = Image.fromarray(np.round(rgb / (2**bits - 1) * 255).astype(np.uint8), mode="RGB")
    elif pixels.ndim == 3:
        if photometric.startswith("YBR"):
            pixels = convert_color_space(pixels, photometric, "RGB")
        image = Image.fromarray(pixels.astype(np.uint8), mode="RGB")
    else:
        values = apply_modality_lut(pixels, dataset).astype(np.float64)
        center, width = _window(dataset, values)
        scaled = np.clip((values - (center - width / 2)) / width, 0.0, 1.0)
        if photometric == "MONOCHROME1":
            scaled = 1.0 - scaled
        image = Image.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L")

    if square and image.width != image.height:
        side = max(image.size)
        canvas = Image.new(image.mode, (side, side), 0)
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    return image


def load_dicom_slices(files: Sequence[str | os.PathLike] | None = None, square: bool = True) -> datasets.Dataset:
    """Read DICOM files into a ``datasets.Dataset`` in the common schema.

    Args:
        files: paths of DICOM files, or names of pydicom's bundled test files;
            defaults to :data:`DEFAULT_FILES` (real CT and MR slices).
        square: pad each image with black to a square (see :func:`dicom_to_image`).

    Returns:
        A Dataset with features :data:`DICOM_FEATURES`: ``image`` (PNG),
        ``caption`` (from the header), ``image_id`` (the file name without
        extension), ``modality`` (``CT``, ``MRI``, ``ultrasound`` ...),
        ``anatomy`` (BodyPartExamined in lower case, else ``unknown``) and
        ``source_file``.

    Raises:
        FileNotFoundError: if a file does not exist.
        ValueError: if a file is not DICOM or its pixels cannot be decoded,
            naming the file.
    """
    import pydicom

    files = DEFAULT_FILES if files is None else files
    rows: dict[str, list] = {name: [] for name in DICOM_FEATURES}
    for file in files:
        path = Path(file)
        if not path.is_file() and path.parent == Path("."):
            path = pydicom_test_file(str(file))
        if not path.is_file():
            raise FileNotFoundError(f"DICOM file not found: {file}")
        try:
            dataset = pydicom.dcmread(path)
            image = dicom_to_image(dataset, square=square)
        except (pydicom.errors.InvalidDicomError, ValueError) as error:
            raise ValueError(f"Cannot read {path} as a DICOM image: {error}") from error

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        rows["image"].append({"bytes": buffer.getvalue(), "path": None})
        rows["caption"].append(caption_from_header(dataset))
        rows["image_id"].append(path.stem)
        modality = str(dataset.get("Modality", "unknown"))
        rows["modality"].append(_MODALITY_NAMES.get(modality, modality))
        rows["anatomy"].append(_anatomy(dataset))
        rows["source_file"].append(path.name)
        logger.debug("Read %s: %s", path.name, rows["caption"][-1])
    return datasets.Dataset.from_dict(rows, features=DICOM_FEATURES)
