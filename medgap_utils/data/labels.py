"""Structured labels of the phantom corpus and how they are sampled.

Label columns (one value per image):

- ``modality``: ``radiograph``, ``CT``, ``MRI`` or ``ultrasound``.
- ``anatomy``: ``chest``, ``abdomen``, ``head`` or ``knee``.
- ``finding``: ``normal`` or one of :data:`FINDINGS`; one finding per image.
- ``side``: ``right``, ``left``, ``bilateral`` or ``none``: the side of the
  finding. For knee radiographs it is the side of the knee, visible from the
  fibula. For abdominal ultrasound it is the upper quadrant scanned, visible
  from liver versus spleen. Both also apply to normal images.
- ``location``: the lung zone, lobe, space or bone of the finding, or
  ``none`` when the finding has no location attribute.
- ``size_mm``: diameter of the (largest) lesion, thickness of a fluid layer or
  hemorrhage, or depth of an effusion, in millimetres; ``-1`` when the finding
  has no size (normal, cardiomegaly, hydrocephalus, fracture).
- ``count``: number of lesions for nodules, liver lesions (1 to 3), else 1;
  ``0`` for normal images.
- ``group``: the semantic group for group-wise metrics (clustering, zero-shot
  classification): the finding name, with normal images split by anatomy
  (``normal chest``, ``normal abdomen`` ...). Groups thus mean "what a
  radiologist would report", independent of the modality that shows it,
  which is what an aligned image-text space should cluster by.
"""

from __future__ import annotations

import numpy as np

from .phantom import SCENES

FINDINGS = (
    "nodule", "mass", "pleural effusion", "pneumothorax", "cardiomegaly",
    "liver lesion", "kidney cyst", "free fluid",
    "intracranial hemorrhage", "brain tumor", "hydrocephalus",
    "fracture", "joint effusion",
)
MODALITIES = ("radiograph", "CT", "MRI", "ultrasound")
ANATOMIES = ("chest", "abdomen", "head", "knee")
SIDES = ("right", "left", "bilateral", "none")
NO_SIZE = -1

#: Probability that an image shows no finding.
NORMAL_PROBABILITY = {"knee": 0.45}
DEFAULT_NORMAL_PROBABILITY = 0.25

# Per finding: possible sides, size range in mm (None: no size), maximum count,
# and locations per modality (a tuple used by every modality when not a dict).
_RULES = {
    "nodule": (("right", "left"), (12, 28), 3,
               {"radiograph": ("upper zone", "mid zone", "lower zone"), "CT": ("peripheral", "central")}),
    "mass": (("right", "left"), (35, 70), 1,
             {"radiograph": ("upper zone", "mid zone", "lower zone"), "CT": ("peripheral", "central")}),
    "pleural effusion": (("right", "left", "bilateral"), (25, 70), 1, ("none",)),
    "pneumothorax": (("right", "left"), (10, 30), 1, {"radiograph": ("apical",), "CT": ("anterior",)}),
    "cardiomegaly": (("none",), None, 1, ("none",)),
    "liver lesion": (("none",), (12, 40), 3,
                     {"CT": ("right lobe", "left lobe"), "MRI": ("right lobe", "left lobe"),
                      "ultrasound": ("right lobe",)}),
    "kidney cyst": (("right", "left"), (14, 45), 1, ("none",)),
    "free fluid": (("none",), (12, 35), 1, ("perihepatic", "perisplenic")),
    "intracranial hemorrhage": (("right", "left"), (8, 30), 1, ("subdural", "intraparenchymal")),
    "brain tumor": (("right", "left"), (18, 45), 1, ("frontal lobe", "parietal lobe", "occipital lobe")),
    "hydrocephalus": (("none",), None, 1, ("none",)),
    "fracture": (("right", "left"), None, 1, ("distal femur", "proximal tibia")),
    "joint effusion": (("none",), (6, 25), 1, ("suprapatellar",)),
}

SCENE_NAMES = tuple(SCENES)


def group_label(finding: str, anatomy: str) -> str:
    """Return the semantic group of an image: its finding, or ``normal <anatomy>``."""
    return f"normal {anatomy}" if finding == "normal" else finding


def all_groups() -> tuple[str, ...]:
    """Return every group label the phantom corpus can contain, in a fixed order."""
    return tuple(f"normal {anatomy}" for anatomy in ANATOMIES) + FINDINGS


def sample_labels(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw the labels of ``n`` phantom images.

    Scenes (anatomy-modality pairs) are equally likely; a finding is drawn
    uniformly among those its scene can show, after a normal/abnormal draw.
    Returns a dict of arrays of length ``n`` with the keys ``scene`` (index
    into ``SCENE_NAMES``), ``anatomy``, ``modality``, ``finding``, ``side``,
    ``location``, ``size_mm``, ``count`` and ``group``.
    """
    scene = rng.integers(0, len(SCENE_NAMES), n)
    anatomy = np.array([SCENE_NAMES[s][0] for s in scene], dtype=object)
    modality = np.array([SCENE_NAMES[s][1] for s in scene], dtype=object)
    normal_p = np.array([NORMAL_PROBABILITY.get(a, DEFAULT_NORMAL_PROBABILITY) for a in anatomy])
    is_normal = rng.uniform(size=n) < normal_p
    pick = rng.uniform(size=n)
    finding = np.array(
        ["normal" if is_normal[i] else SCENES[SCENE_NAMES[scene[i]]][int(pick[i] * len(SCENES[SCENE_NAMES[scene[i]]]))]
         for i in range(n)],
        dtype=object,
    )

    # Attribute draws are made for every image and used where the rule applies,
    # so that the number of random draws does not depend on the labels.
    side_draw, location_draw, size_draw, count_draw = rng.uniform(size=(4, n))
    side = np.full(n, "none", dtype=object)
    location = np.full(n, "none", dtype=object)
    size_mm = np.full(n, NO_SIZE, dtype=np.int32)
    count = np.zeros(n, dtype=np.int32)
    for i in range(n):
        if finding[i] == "normal":
            continue
        sides, size_range, max_count, locations = _RULES[finding[i]]
        if isinstance(locations, dict):
            locations = locations[modality[i]]
        side[i] = sides[int(side_draw[i] * len(sides))]
        location[i] = locations[int(location_draw[i] * len(locations))]
        if size_range is not None:
            low, high = size_range
            size_mm[i] = low + int(size_draw[i] * (high - low + 1))
        # Two lesions are more common than three.
        count[i] = 1 if max_count == 1 else int(np.searchsorted([0.6, 0.85, 1.0], count_draw[i]) + 1)

    # Laterality that the image shows even without a finding.
    knee_xray = (anatomy == "knee") & (modality == "radiograph")
    side[knee_xray & (finding == "normal")] = np.where(side_draw[knee_xray & (finding == "normal")] < 0.5, "right", "left")
    ultrasound = modality == "ultrasound"
    for i in np.flatnonzero(ultrasound):
        if finding[i] == "liver lesion" or (finding[i] == "free fluid" and location[i] == "perihepatic"):
            side[i] = "right"
        elif finding[i] == "free fluid":
            side[i] = "left"
        elif finding[i] == "normal":
            side[i] = "right" if side_draw[i] < 0.5 else "left"

    group = np.array([group_label(f, a) for f, a in zip(finding, anatomy)], dtype=object)
    return {"scene": scene, "anatomy": anatomy, "modality": modality, "finding": finding, "side": side,
            "location": location, "size_mm": size_mm, "count": count, "group": group}
