"""Phantom rendering: every finding is visible where it is drawn, on the side the label names."""

import numpy as np
import pytest

from medgap_utils.data.labels import sample_labels
from medgap_utils.data.phantom import SCENES, render_phantoms, sample_render_params

CASES = [(anatomy, modality, finding) for (anatomy, modality), findings in SCENES.items() for finding in findings]
IMAGE_SIZE = 64


def _batch(anatomy, modality, finding, n=12, seed=0):
    labels = sample_labels(np.random.default_rng(seed), 6000)
    rows = np.flatnonzero((labels["anatomy"] == anatomy) & (labels["modality"] == modality)
                          & (labels["finding"] == finding))[:n]
    assert len(rows) == n, (anatomy, modality, finding)
    chosen = {key: value[rows] for key, value in labels.items()}
    params = sample_render_params(np.random.default_rng(seed + 1), n)
    return chosen, params


@pytest.mark.parametrize("anatomy, modality, finding", CASES)
def test_finding_changes_pixels_in_its_region(anatomy, modality, finding):
    """The same image without the finding differs clearly inside the finding mask, hardly outside."""
    labels, params = _batch(anatomy, modality, finding)
    with_finding, mask = render_phantoms(anatomy, modality, labels, params, IMAGE_SIZE, noise_seed=5)
    without, _ = render_phantoms(anatomy, modality, labels, params, IMAGE_SIZE, noise_seed=5, draw_findings=False)
    difference = np.abs(with_finding.astype(np.float32) - without.astype(np.float32)) / 255
    region = mask > 0.5

    assert region.reshape(len(region), -1).sum(1).min() >= 3, "every image has a finding region of at least 3 pixels"
    per_image = np.array([difference[i][region[i]].mean() for i in range(len(region))])
    assert per_image.min() > 0.04, f"weakest finding contrast {per_image.min():.3f}"
    assert difference[~region].mean() < 0.02


@pytest.mark.parametrize("anatomy, modality, finding", CASES)
def test_finding_region_stands_out_from_normal_images(anatomy, modality, finding):
    """Mean intensity in the finding region differs from the same region of normal images of the scene."""
    labels, params = _batch(anatomy, modality, finding, n=16)
    images, masks = render_phantoms(anatomy, modality, labels, params, IMAGE_SIZE, noise_seed=7)
    normal_labels, normal_params = _batch(anatomy, modality, "normal", n=16, seed=3)
    normal_images, _ = render_phantoms(anatomy, modality, normal_labels, normal_params, IMAGE_SIZE, noise_seed=8)
    gaps = []
    for image, mask in zip(images, masks):
        region = mask > 0.5
        finding_mean = image[region].mean()
        normal_mean = normal_images[:, region].mean()
        gaps.append(abs(float(finding_mean) - float(normal_mean)) / 255)
    assert np.median(gaps) > 0.03, f"median gap {np.median(gaps):.3f}"


@pytest.mark.parametrize("anatomy, modality, finding", [
    case for case in CASES if case[1] != "ultrasound" and case[2] in (
        "nodule", "mass", "pleural effusion", "pneumothorax", "kidney cyst", "intracranial hemorrhage", "brain tumor")
])
def test_finding_lies_on_labeled_side(anatomy, modality, finding):
    """The patient's right is on the image's left (radiological convention); ultrasound shows sides by organ."""
    labels, params = _batch(anatomy, modality, finding, n=16)
    params["rotation"][:] = 0.0
    params["shift_x"][:] = 0.0
    _, masks = render_phantoms(anatomy, modality, labels, params, IMAGE_SIZE, noise_seed=1)
    columns = np.arange(IMAGE_SIZE)
    for mask, side in zip(masks, labels["side"]):
        if side not in ("right", "left") or mask.sum() == 0:
            continue
        center = (mask.sum(0) * columns).sum() / mask.sum()
        if side == "right":
            assert center < IMAGE_SIZE / 2
        else:
            assert center > IMAGE_SIZE / 2


def test_larger_size_gives_larger_region():
    labels, params = _batch("chest", "CT", "mass", n=2)
    labels["size_mm"][:] = [35, 70]
    labels["count"][:] = 1
    params["scale"][:] = 1.0
    _, masks = render_phantoms("chest", "CT", labels, params, IMAGE_SIZE, noise_seed=0)
    assert masks[1].sum() > 2.5 * masks[0].sum()


def test_rendering_is_deterministic():
    labels, params = _batch("head", "MRI", "brain tumor", n=4)
    first, _ = render_phantoms("head", "MRI", labels, params, IMAGE_SIZE, noise_seed=9)
    second, _ = render_phantoms("head", "MRI", labels, params, IMAGE_SIZE, noise_seed=9)
    assert np.array_equal(first, second)


def test_modalities_look_different():
    """Mean image statistics separate the modalities of the same anatomy."""
    stats = {}
    for anatomy, modality in (("abdomen", "CT"), ("abdomen", "MRI"), ("abdomen", "ultrasound")):
        labels, params = _batch(anatomy, modality, "normal", n=16)
        images, _ = render_phantoms(anatomy, modality, labels, params, IMAGE_SIZE, noise_seed=2)
        stats[modality] = images.astype(np.float32).mean(0) / 255
    assert np.abs(stats["CT"] - stats["MRI"]).mean() > 0.05
    assert np.abs(stats["CT"] - stats["ultrasound"]).mean() > 0.05


def test_unknown_scene_raises():
    labels, params = _batch("knee", "MRI", "normal", n=1)
    with pytest.raises(ValueError, match="Unknown scene"):
        render_phantoms("knee", "ultrasound", labels, params, IMAGE_SIZE, noise_seed=0)
