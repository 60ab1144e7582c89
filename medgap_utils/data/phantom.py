"""Procedural rendering of the phantom radiology images.

Each *scene* is one plausible pair of anatomy and imaging modality (a chest
radiograph, an abdominal ultrasound ...). A scene is drawn for a whole batch
of images at once with numpy broadcasting: every per-image parameter is an
array of shape ``(n, 1, 1)`` and every image-sized quantity ``(n, S, S)``.

How each modality forms its image:

- radiograph: a projection. Structures are ellipsoids whose thickness profile
  (``sqrt(1 - r^2)``) is summed into an attenuation map ``A`` and displayed as
  ``1 - exp(-k A)`` (dense is white, air is dark).
- CT: an axial cross-section of tissues in Hounsfield units, displayed
  through a window (center/width) chosen per anatomy.
- MRI: the same tissue layout mapped to T2-weighted signal, so that fluid and
  CSF are bright, flowing blood and cortical bone dark, with a coil bias field
  and Rician noise.
- ultrasound: a fan-shaped sector from a transducer at the top, echogenicity
  per tissue (fluid anechoic), multiplicative speckle, depth attenuation and
  posterior acoustic enhancement behind fluid.

Images follow the radiological display convention: the patient's right is on
the image's left in frontal projections and axial slices, anterior is up in
axial slices and left in sagittal slices.

Rendering is deterministic: the same labels, parameters and ``noise_seed``
give the same pixels. ``draw_findings=False`` renders the same images with
every finding left out, which the tests use to show each finding is visible.
"""

from __future__ import annotations

import numpy as np

#: The (anatomy, modality) pairs the corpus contains, with the findings each can show.
SCENES: dict[tuple[str, str], tuple[str, ...]] = {
    ("chest", "radiograph"): ("nodule", "mass", "pleural effusion", "pneumothorax", "cardiomegaly"),
    ("chest", "CT"): ("nodule", "mass", "pleural effusion", "pneumothorax", "cardiomegaly"),
    ("abdomen", "CT"): ("liver lesion", "kidney cyst", "free fluid"),
    ("abdomen", "MRI"): ("liver lesion", "kidney cyst", "free fluid"),
    ("abdomen", "ultrasound"): ("liver lesion", "kidney cyst", "free fluid"),
    ("head", "CT"): ("intracranial hemorrhage", "brain tumor", "hydrocephalus"),
    ("head", "MRI"): ("intracranial hemorrhage", "brain tumor", "hydrocephalus"),
    ("knee", "radiograph"): ("fracture",),
    ("knee", "MRI"): ("joint effusion",),
}

#: Millimetres per unit of the phantom's coordinate frame, which spans [-1, 1]
#: across the image before the patient-size nuisance is applied.
MM_PER_UNIT = {"chest": 160.0, "abdomen": 170.0, "head": 110.0, "knee": 90.0}

#: Number of nuisance and placement parameters per image (see sample_render_params).
N_JITTER = 6
N_POSITIONS = 3


def sample_render_params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw the nuisance and placement parameters of ``n`` images.

    Returns arrays of length ``n`` (``jitter`` is ``(n, 6)`` in [-1, 1],
    ``positions`` is ``(n, 3, 2)`` in [0, 1]): rotation (radians), scale
    (patient size), shift (frame units), display gamma, noise level, blur
    (pixels), artifact flag, severity in [0, 1] for findings without a size
    (cardiomegaly, hydrocephalus), and a line angle (fracture).
    """
    return {
        "rotation": rng.uniform(-0.16, 0.16, n),
        "scale": rng.uniform(0.88, 1.12, n),
        "shift_x": rng.uniform(-0.06, 0.06, n),
        "shift_y": rng.uniform(-0.06, 0.06, n),
        "jitter": rng.uniform(-1.0, 1.0, (n, N_JITTER)),
        "positions": rng.uniform(0.0, 1.0, (n, N_POSITIONS, 2)),
        "gamma": np.exp(rng.uniform(-0.25, 0.25, n)),
        "noise": rng.uniform(0.01, 0.045, n),
        "blur": rng.uniform(0.3, 0.9, n),
        "artifact": rng.uniform(0.0, 1.0, n) < 0.3,
        "severity": rng.uniform(0.0, 1.0, n),
        "angle": rng.uniform(-0.5, 0.5, n),
    }


# ----------------------------------------------------------------------------
# Primitives. u, v: (n, S, S) frame coordinates; px: (n, 1, 1) pixel size in
# frame units. Shape parameters broadcast against (n, 1, 1).


def _col(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def _radius(u, v, cx, cy, ax, ay):
    # Zero-sized shapes (absent findings) must give an empty mask, not NaN.
    ax, ay = np.maximum(ax, 1e-4), np.maximum(ay, 1e-4)
    return np.sqrt(((u - cx) / ax) ** 2 + ((v - cy) / ay) ** 2)


def _ellipse(u, v, cx, cy, ax, ay, px):
    """Soft (anti-aliased) filled ellipse in [0, 1]."""
    distance = (_radius(u, v, cx, cy, ax, ay) - 1.0) * np.maximum(np.minimum(ax, ay), 1e-4)
    return np.clip(0.5 - distance / px, 0.0, 1.0)


def _ellipsoid(u, v, cx, cy, ax, ay):
    """Thickness of an ellipsoid seen in projection, 1 at its center."""
    ax, ay = np.maximum(ax, 1e-4), np.maximum(ay, 1e-4)
    r2 = ((u - cx) / ax) ** 2 + ((v - cy) / ay) ** 2
    return np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))


def _band(distance, half_width, px):
    """Soft band of points within ``half_width`` of a curve, given the signed distance to it."""
    return np.clip(0.5 + (half_width - np.abs(distance)) / px, 0.0, 1.0)


def _step(distance, px):
    """Soft half-plane: 1 where ``distance`` > 0."""
    return np.clip(0.5 + distance / px, 0.0, 1.0)


def _composite(layers, table, background, shape):
    """Paint tissue layers in order; ``table`` maps tissue names to values."""
    image = np.full(shape, background, dtype=np.float32)
    for tissue, mask in layers:
        value = table[tissue]
        image += mask * (value - image)
    return image


def _smooth_noise(rng, n, size, sigma_px, anisotropy=1.0, complex_valued=False):
    """Gaussian-filtered white noise of shape (n, size, size), unit variance."""
    white = rng.standard_normal((n, size, size)).astype(np.float32)
    if complex_valued:
        white = white + 1j * rng.standard_normal((n, size, size)).astype(np.float32)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    transfer = np.exp(-2 * np.pi**2 * sigma_px**2 * (fy**2 + (fx * anisotropy) ** 2))
    field = np.fft.ifft2(np.fft.fft2(white) * transfer)
    if not complex_valued:
        field = field.real
    scale = np.sqrt(np.mean(np.abs(field) ** 2, axis=(1, 2), keepdims=True)) + 1e-8
    return field / scale


def _blur(images, sigma_px):
    """Gaussian blur with a per-image sigma (array of shape (n,)), through the FFT."""
    size = images.shape[-1]
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    sigma = _col(sigma_px)
    transfer = np.exp(-2 * np.pi**2 * sigma**2 * (fy**2 + fx**2))
    return np.fft.irfft2(np.fft.rfft2(images) * transfer, s=images.shape[-2:]).astype(np.float32)


def _side_sign(side):
    """Image-x sign of a side: the patient's right is on the image's left."""
    return np.where(side == "right", -1.0, 1.0).astype(np.float32)


def _mm(size_mm, anatomy, scale=1.0):
    return _col(np.maximum(size_mm, 0)) / MM_PER_UNIT[anatomy]


# ----------------------------------------------------------------------------
# Scenes. Each returns (image in [0, 1] before display nuisances, finding mask).


def _chest_radiograph(u, v, px, labels, params, present, rng):
    n = u.shape[0]
    j = params["jitter"]
    finding, side = labels["finding"], labels["side"]
    size = labels["size_mm"]
    mask = np.zeros_like(u)

    lung_ax = _col(0.3 * (1 + 0.06 * j[:, 0]))
    lung_ay = _col(0.55 * (1 + 0.06 * j[:, 1]))
    lung_cy = _col(-0.06 + 0.03 * j[:, 2])
    lung_cx = np.float32(0.38)
    lungs = {}
    for sign in (-1.0, 1.0):
        # A flattened thickness profile keeps the lungs dark out to their edges.
        lungs[sign] = (_ellipse(u, v, sign * lung_cx, lung_cy, lung_ax, lung_ay, px),
                       _ellipsoid(u, v, sign * lung_cx, lung_cy, lung_ax, lung_ay) ** 0.35)

    attenuation = 0.9 * _ellipsoid(u, v, 0.0, 0.1, 0.95, 1.3) ** 0.5
    markings = np.clip(_smooth_noise(rng, n, u.shape[-1], 1.0), 0, None) * 0.06
    lucency = np.zeros_like(u)
    visible_markings = np.zeros_like(u)

    # Pneumothorax: the lung edge retracts toward the hilum, leaving a rim of
    # air without vessel markings at the apex, and a thin visceral pleural line.
    is_ptx = present & (finding == "pneumothorax")
    rim = _mm(size, "chest") * is_ptx[:, None, None]
    for sign, (lung_mask, lung_thickness) in lungs.items():
        on_side = _col(is_ptx & (_side_sign(side) == sign))
        collapsed = _ellipse(u, v, sign * lung_cx + sign * rim * 0.3, lung_cy + rim * 0.9,
                             lung_ax - rim * 0.3, lung_ay - rim * 0.9, px)
        air_rim = lung_mask * (1 - collapsed) * on_side
        lucency += 0.65 * lung_thickness + 0.2 * air_rim
        visible_markings += markings * lung_mask * (1 - air_rim)
        pleural_line = lung_mask * _band(
            (_radius(u, v, sign * lung_cx + sign * rim * 0.3, lung_cy + rim * 0.9,
                     lung_ax - rim * 0.3, lung_ay - rim * 0.9) - 1) * lung_ay, px * 0.5, px) * on_side
        attenuation += 0.25 * pleural_line
        mask = np.maximum(mask, air_rim)

    # Pleural effusion: fluid fills the lung base up to a meniscus that rises laterally.
    is_effusion = present & (finding == "pleural effusion")
    depth = _mm(size, "chest")
    for sign, (lung_mask, lung_thickness) in lungs.items():
        on_side = _col(is_effusion & ((_side_sign(side) == sign) | (side == "bilateral")))
        level = lung_cy + lung_ay - depth + 0.25 * depth * (1 - np.abs(u - sign * lung_cx) / lung_ax)
        fluid = lung_mask * _step(v - level, px) * on_side
        lucency -= fluid * 0.65 * lung_thickness
        visible_markings *= 1 - fluid
        attenuation += 0.45 * fluid
        mask = np.maximum(mask, fluid)

    attenuation -= lucency
    attenuation += visible_markings

    # Mediastinum, spine, heart; cardiomegaly widens the cardiac silhouette.
    attenuation += 0.25 * _band(u, 0.08, px) * _step(0.3 - v, px) + 0.12 * _band(u, 0.045, px)
    heart_factor = 1 + (0.35 + 0.25 * _col(params["severity"])) * _col(present & (finding == "cardiomegaly"))
    heart_cx, heart_cy = _col(0.08 + 0.02 * j[:, 3]), _col(0.28 + 0.03 * j[:, 4])
    heart_ax, heart_ay = _col(0.25 * (1 + 0.05 * j[:, 5])), np.float32(0.21)
    attenuation += 0.55 * _ellipsoid(u, v, heart_cx, heart_cy, heart_ax * heart_factor, heart_ay * heart_factor ** 0.5) ** 0.4
    enlarged = _ellipse(u, v, heart_cx, heart_cy, heart_ax * heart_factor, heart_ay * heart_factor ** 0.5, px)
    mask = np.maximum(mask, enlarged * (1 - _ellipse(u, v, heart_cx, heart_cy, heart_ax, heart_ay, px)))

    # Posterior ribs and clavicles.
    lateral = _step(0.75 - np.abs(u), px) * _step(np.abs(u) - 0.08, px)
    for k in range(7):
        rib_level = -0.55 + 0.15 * k
        attenuation += 0.12 * lateral * _band(v - (rib_level + 0.6 * (np.abs(u) - 0.3) ** 2 + 0.12 * np.abs(u)), 0.02, px)
    attenuation += 0.25 * _step(0.6 - np.abs(u), px) * _step(np.abs(u) - 0.06, px) * _band(v - (-0.66 + 0.12 * np.abs(u)), 0.025, px)

    # Nodules and masses are round opacities in the labeled zone of the labeled lung.
    # Further nodules go to random places in the same lung.
    zone_level = {"upper zone": -0.35, "mid zone": -0.1, "lower zone": 0.16}
    zones = np.array([zone_level.get(location, 0.0) for location in labels["location"]], dtype=np.float32)
    for name, amplitude in (("nodule", 0.5), ("mass", 0.55)):
        is_lesion = present & (finding == name)
        if not is_lesion.any():
            continue
        radius = _mm(size, "chest") / 2
        for k in range(N_POSITIONS):
            drawn = _col(is_lesion & (labels["count"] > k))
            pos = params["positions"][:, k]
            cx = _col(_side_sign(side) * (0.4 + (pos[:, 0] - 0.5) * 0.2))
            cy = _col(np.where(k == 0, zones, -0.3 + 0.5 * pos[:, 1]))
            r = radius * (1.0 if k == 0 else 0.75)
            blob = _ellipsoid(u, v, cx, cy, r, r)
            if name == "mass":
                blob = np.maximum(blob, _ellipsoid(u, v, cx + 0.4 * r, cy - 0.3 * r, 0.8 * r, 0.7 * r))
            attenuation += amplitude * blob * drawn
            mask = np.maximum(mask, (blob > 0.05) * drawn)

    image = 1 - np.exp(-1.5 * np.clip(attenuation, 0, None))
    return image / 0.85, mask


_CHEST_CT_HU = {"air": -1000, "fat": -100, "muscle": 45, "lung": -820, "vessel": 40, "heart": 40,
                "aorta": 50, "bone": 800, "marrow": 250, "nodule": 40, "effusion": 15}


def _chest_ct(u, v, px, labels, params, present, rng):
    n = u.shape[0]
    j = params["jitter"]
    finding, side, size = labels["finding"], labels["side"], labels["size_mm"]
    mask = np.zeros_like(u)
    layers = [("fat", _ellipse(u, v, 0, 0.05, 0.9, 0.63, px)),
              ("muscle", _ellipse(u, v, 0, 0.05, _col(0.83 + 0.03 * j[:, 0]), 0.56, px))]

    lung_ax, lung_ay = _col(0.3 * (1 + 0.05 * j[:, 1])), _col(0.42 * (1 + 0.05 * j[:, 2]))
    lung_cx, lung_cy = np.float32(0.37), np.float32(0.02)
    # Vessels: sparse, faint branching texture, fainter than a nodule.
    vessels = np.clip((_smooth_noise(rng, n, u.shape[-1], 0.7) - 1.6) * 1.2, 0, 0.45)
    is_ptx = present & (finding == "pneumothorax")
    is_effusion = present & (finding == "pleural effusion")
    depth = _mm(size, "chest")
    for sign in (-1.0, 1.0):
        lung = _ellipse(u, v, sign * lung_cx, lung_cy, lung_ax, lung_ay, px)
        on_side = _side_sign(side) == sign
        # Pneumothorax: non-dependent (anterior) air without vessels.
        air = lung * _step(lung_cy - lung_ay + 2 * depth - v, px) * _col(is_ptx & on_side)
        layers.append(("lung", lung))
        layers.append(("vessel", lung * vessels * (1 - air)))
        layers.append(("air", air))
        # Pleural effusion: dependent (posterior) fluid with a curved meniscus.
        level = lung_cy + lung_ay - depth + 0.3 * depth * ((u - sign * lung_cx) / lung_ax) ** 2
        fluid = lung * _step(v - level, px) * _col(is_effusion & (on_side | (side == "bilateral")))
        layers.append(("effusion", fluid))
        mask = np.maximum(mask, np.maximum(air, fluid))

    heart_factor = 1 + (0.3 + 0.25 * _col(params["severity"])) * _col(present & (finding == "cardiomegaly"))
    heart_cx, heart_cy = _col(0.1 + 0.03 * j[:, 3]), _col(-0.12 + 0.03 * j[:, 4])
    heart_ax, heart_ay = np.float32(0.22), np.float32(0.19)
    heart = _ellipse(u, v, heart_cx, heart_cy, heart_ax * heart_factor, heart_ay * heart_factor, px)
    mask = np.maximum(mask, heart * (1 - _ellipse(u, v, heart_cx, heart_cy, heart_ax, heart_ay, px)))
    layers += [("fat", _ellipse(u, v, 0.0, 0.0, 0.16, 0.36, px)),
               ("heart", heart),
               ("aorta", _ellipse(u, v, 0.09, 0.3, 0.06, 0.06, px)),
               ("bone", _ellipse(u, v, 0.0, 0.46, 0.1, 0.09, px)),
               ("marrow", _ellipse(u, v, 0.0, 0.46, 0.075, 0.065, px)),
               ("bone", _ellipse(u, v, 0.0, -0.5, 0.07, 0.035, px))]
    for angle in np.linspace(0.35, np.pi - 0.35, 5):
        for sign in (-1.0, 1.0):
            layers.append(("bone", _ellipse(u, v, sign * 0.82 * np.cos(angle), 0.05 + 0.56 * np.sin(angle) * 0.98,
                                            0.03, 0.03, px)))

    # Nodules and masses: a peripheral one sits near the pleura, a central one near the hilum.
    radial = np.where(labels["location"] == "central", 0.3, 0.72).astype(np.float32)
    for name in ("nodule", "mass"):
        is_lesion = present & (finding == name)
        if not is_lesion.any():
            continue
        radius = _mm(size, "chest") / 2
        for k in range(N_POSITIONS):
            drawn = _col(is_lesion & (labels["count"] > k))
            pos = params["positions"][:, k]
            angle = (pos[:, 0] - 0.5) * 2.4
            rr = np.where(k == 0, radial, 0.3 + 0.4 * pos[:, 1])
            cx = _col(_side_sign(side) * 0.37) + _col(_side_sign(side)) * _col(rr * np.cos(angle)) * lung_ax * 0.8
            cy = lung_cy + _col(rr * np.sin(angle)) * lung_ay * 0.8
            r = radius * (1.0 if k == 0 else 0.75)
            blob = _ellipse(u, v, cx, cy, r, r, px)
            if name == "mass":
                blob = np.maximum(blob, _ellipse(u, v, cx + 0.4 * r, cy - 0.3 * r, 0.8 * r, 0.7 * r, px))
            layers.append(("nodule", blob * drawn))
            mask = np.maximum(mask, blob * drawn)

    hu = _composite(layers, _CHEST_CT_HU, -1000.0, u.shape)
    # A lung window, wide enough to keep the mediastinum apart from the chest wall.
    center = _col(-450 + 50 * j[:, 5])
    width = _col(1200 + 100 * j[:, 0])
    return (hu - (center - width / 2)) / width, mask


_ABDOMEN_TABLES = {
    # Contrast-enhanced CT, portal venous phase, in HU.
    "CT": {"air": -1000, "fat": -100, "muscle": 50, "liver": 110, "spleen": 120, "kidney": 180,
           "sinus": -60, "bone": 700, "marrow": 250, "csf": 10, "vessel": 160, "bowel": 15,
           "gas": -900, "lesion": 25, "cyst": 5, "fluid": 10},
    # T2-weighted MRI signal in [0, 1].
    "MRI": {"air": 0.0, "fat": 0.75, "muscle": 0.2, "liver": 0.22, "spleen": 0.5, "kidney": 0.52,
            "sinus": 0.75, "bone": 0.04, "marrow": 0.55, "csf": 0.95, "vessel": 0.05, "bowel": 0.85,
            "gas": 0.0, "lesion": 0.88, "cyst": 1.0, "fluid": 0.97},
}


def _abdomen_axial(u, v, px, labels, params, present, rng, modality):
    j = params["jitter"]
    finding, side, size, location = labels["finding"], labels["side"], labels["size_mm"], labels["location"]
    mask = np.zeros_like(u)
    liver_cx, liver_cy = _col(-0.33 + 0.03 * j[:, 0]), _col(-0.06 + 0.03 * j[:, 1])
    liver_ax, liver_ay = _col(0.4 * (1 + 0.06 * j[:, 2])), np.float32(0.38)
    spleen_cx, spleen_cy, spleen_ax, spleen_ay = np.float32(0.55), np.float32(0.08), np.float32(0.14), np.float32(0.22)
    layers = [("fat", _ellipse(u, v, 0, 0.05, 0.92, _col(0.68 + 0.04 * j[:, 3]), px)),
              ("muscle", _ellipse(u, v, 0, 0.05, 0.86, _col(0.62 + 0.04 * j[:, 3]), px)),
              ("fat", _ellipse(u, v, 0, 0.05, 0.82, _col(0.58 + 0.04 * j[:, 3]), px))]

    # Free fluid: a crescent around the liver (perihepatic) or spleen (perisplenic).
    is_fluid = present & (finding == "free fluid")
    thickness = _mm(size, "abdomen")
    perihepatic = _col(is_fluid & (location == "perihepatic"))
    perisplenic = _col(is_fluid & (location == "perisplenic"))
    fluid = np.maximum(
        _ellipse(u, v, liver_cx - thickness * 0.7, liver_cy, liver_ax + thickness * 0.7, liver_ay + thickness * 0.5, px)
        * _step(liver_cx - u, px) * perihepatic,
        _ellipse(u, v, spleen_cx + thickness * 0.6, spleen_cy, spleen_ax + thickness * 0.6, spleen_ay + thickness * 0.4, px)
        * _step(u - spleen_cx, px) * perisplenic,
    )
    layers.append(("fluid", fluid))

    layers += [("liver", _ellipse(u, v, liver_cx, liver_cy, liver_ax, liver_ay, px)),
               ("liver", _ellipse(u, v, 0.02, -0.26, 0.22, 0.14, px)),
               ("spleen", _ellipse(u, v, spleen_cx, spleen_cy, spleen_ax, spleen_ay, px)),
               ("bowel", _ellipse(u, v, 0.28, -0.26, 0.17, 0.13, px)),
               ("gas", _ellipse(u, v, 0.28, -0.34, 0.11, 0.045, px))]
    inner = (fluid < 0.5)
    mask = np.maximum(mask, fluid * inner.astype(np.float32) + fluid * (1 - inner))
    for k in range(3):
        gx = _col(0.05 + 0.12 * k + 0.04 * j[:, k])
        layers.append(("gas", _ellipse(u, v, gx, _col(0.12 + 0.05 * j[:, k + 3]), 0.045, 0.035, px)))

    kidney_cx, kidney_cy = np.float32(0.33), _col(0.33 + 0.02 * j[:, 4])
    for sign in (-1.0, 1.0):
        layers += [("muscle", _ellipse(u, v, sign * 0.15, 0.42, 0.06, 0.08, px)),
                   ("kidney", _ellipse(u, v, sign * kidney_cx, kidney_cy, 0.1, 0.14, px)),
                   ("sinus", _ellipse(u, v, sign * (kidney_cx - 0.03), kidney_cy, 0.035, 0.06, px))]
    layers += [("bone", _ellipse(u, v, 0, 0.43, 0.11, 0.1, px)),
               ("marrow", _ellipse(u, v, 0, 0.43, 0.085, 0.075, px)),
               ("csf", _ellipse(u, v, 0, 0.555, 0.035, 0.025, px)),
               ("vessel", _ellipse(u, v, 0.06, 0.27, 0.05, 0.05, px)),
               ("vessel", _ellipse(u, v, -0.1, 0.25, 0.05, 0.04, px))]

    # Kidney cysts: round, partly exophytic from the lateral border of the kidney of that side.
    is_cyst = present & (finding == "kidney cyst")
    radius = _mm(size, "abdomen") / 2
    sign = _col(_side_sign(side))
    cyst = _ellipse(u, v, sign * (kidney_cx + 0.06), kidney_cy - 0.04, radius, radius, px) * _col(is_cyst)
    layers.append(("cyst", cyst))
    mask = np.maximum(mask, cyst)

    # Liver lesions: in the right lobe (lateral) or left lobe (medial, anterior).
    is_lesion = present & (finding == "liver lesion")
    for k in range(N_POSITIONS):
        drawn = _col(is_lesion & (labels["count"] > k))
        pos = params["positions"][:, k]
        right = location == "right lobe"
        cx = _col(np.where(right, -0.5 + 0.22 * pos[:, 0], -0.06 + 0.1 * pos[:, 0]))
        cy = _col(np.where(right, -0.2 + 0.3 * pos[:, 1], -0.3 + 0.08 * pos[:, 1]))
        r = radius * (1.0 if k == 0 else 0.7)
        lesion = _ellipse(u, v, cx, cy, r, r, px) * drawn
        layers.append(("lesion", lesion))
        mask = np.maximum(mask, lesion)

    table = _ABDOMEN_TABLES[modality]
    values = _composite(layers, table, table["air"], u.shape)
    if modality == "CT":
        center, width = _col(50 + 10 * j[:, 5]), _col(400 + 40 * j[:, 0])
        return (values - (center - width / 2)) / width, mask
    return values, mask


_HEAD_TABLES = {
    "CT": {"air": -1000, "scalp": 10, "bone": 1000, "gray": 40, "white": 28, "csf": 6, "blood": 72,
           "tumor": 48, "edema": 18, "falx": 60},
    "MRI": {"air": 0.0, "scalp": 0.6, "bone": 0.04, "gray": 0.55, "white": 0.38, "csf": 1.0, "blood": 0.1,
            "tumor": 0.72, "edema": 0.88, "falx": 0.15},
}


def _head_axial(u, v, px, labels, params, present, rng, modality):
    j = params["jitter"]
    finding, side, size, location = labels["finding"], labels["side"], labels["size_mm"], labels["location"]
    mask = np.zeros_like(u)
    ax, ay = _col(0.7 * (1 + 0.04 * j[:, 0])), _col(0.84 * (1 + 0.04 * j[:, 1]))
    layers = [("scalp", _ellipse(u, v, 0, 0, ax + 0.08, ay + 0.08, px)),
              ("bone", _ellipse(u, v, 0, 0, ax + 0.05, ay + 0.05, px)),
              ("csf", _ellipse(u, v, 0, 0, ax, ay, px)),
              ("gray", _ellipse(u, v, 0, 0, ax - 0.025, ay - 0.025, px)),
              ("white", _ellipse(u, v, 0, 0.02, ax - 0.16, ay - 0.2, px)),
              ("falx", _ellipse(u, v, 0, 0, ax, ay, px) * _band(u, 0.008, px) * _step(np.abs(v) - 0.25, px))]

    # Lateral ventricles; hydrocephalus dilates them.
    dilation = 1 + (0.7 + 0.5 * _col(params["severity"])) * _col(present & (finding == "hydrocephalus"))
    for sign in (-1.0, 1.0):
        base = (sign * 0.09, -0.05, 0.045, 0.22)
        normal = _ellipse(u, v, base[0], base[1], base[2], base[3], px)
        ventricle = _ellipse(u, v, sign * 0.09 * dilation ** 0.7, base[1], base[2] * dilation, base[3] * dilation ** 0.5, px)
        layers.append(("csf", ventricle))
        mask = np.maximum(mask, ventricle * (1 - normal))

    sign = _col(_side_sign(side))
    extent = _mm(size, "head")
    # Subdural hemorrhage: a crescent between skull and brain over one convexity.
    subdural = _col(present & (finding == "intracranial hemorrhage") & (location == "subdural"))
    crescent = (_ellipse(u, v, 0, 0, ax - 0.01, ay - 0.01, px)
                * (1 - _ellipse(u, v, -sign * extent, 0, ax - 0.01, ay - 0.01 - extent * 0.3, px))
                * _step(u * sign, px) * _step(0.6 - np.abs(v), px) * subdural)
    # Intraparenchymal hemorrhage: a round clot with a thin rim of edema.
    parenchymal = _col(present & (finding == "intracranial hemorrhage") & (location == "intraparenchymal"))
    pos = params["positions"][:, 0]
    clot_cx, clot_cy = sign * _col(0.3 + 0.12 * pos[:, 0]), _col(-0.3 + 0.6 * pos[:, 1])
    clot = _ellipse(u, v, clot_cx, clot_cy, extent / 2, extent / 2, px) * parenchymal
    clot_edema = _ellipse(u, v, clot_cx, clot_cy, extent / 2 + 0.04, extent / 2 + 0.04, px) * parenchymal
    layers += [("edema", clot_edema), ("blood", clot), ("blood", crescent)]
    mask = np.maximum(mask, np.maximum(crescent, clot_edema))

    # Brain tumor: a mass with surrounding vasogenic edema, in the labeled lobe.
    is_tumor = _col(present & (finding == "brain tumor"))
    lobe_y = np.select([location == "frontal lobe", location == "parietal lobe"], [-0.5, 0.05], 0.52).astype(np.float32)
    tumor_cx = sign * _col(0.3 + 0.1 * params["positions"][:, 1, 0])
    tumor_cy = _col(lobe_y + 0.08 * (params["positions"][:, 1, 1] - 0.5))
    radius = extent / 2
    edema = _ellipse(u, v, tumor_cx, tumor_cy, radius * 1.7, radius * 1.5, px) * is_tumor
    core = _ellipse(u, v, tumor_cx, tumor_cy, radius, radius, px) * is_tumor
    layers += [("edema", edema), ("tumor", core)]
    mask = np.maximum(mask, edema)

    table = _HEAD_TABLES[modality]
    values = _composite(layers, table, table["air"], u.shape)
    if modality == "CT":
        center, width = _col(38 + 4 * j[:, 2]), _col(85 + 10 * j[:, 3])
        return (values - (center - width / 2)) / width, mask
    return values, mask


def _knee_radiograph(u, v, px, labels, params, present, rng):
    j = params["jitter"]
    finding, side, location = labels["finding"], labels["side"], labels["location"]
    mask = np.zeros_like(u)
    # AP view: the fibula is lateral, so it appears on the image's left for a
    # right knee and on the image's right for a left knee.
    fibula_x = _col(np.where(side == "right", -0.27, 0.27))
    attenuation = 0.55 * _ellipsoid(u, v, 0, 0, _col(0.56 + 0.04 * j[:, 0]), 1.5)

    # Fracture: a lucent oblique line through the bone; the distal fragment is displaced.
    is_fracture = _col(present & (finding == "fracture"))
    line_y = _col(np.where(location == "distal femur", -0.42, 0.52) + 0.06 * j[:, 1])
    line = (v - line_y) - _col(params["angle"]) * u
    # Distal is down in the image, so the distal fragment lies below the line for both bones.
    beyond = _step(line, px) * is_fracture
    shift = 0.05 * is_fracture * np.sign(_col(params["angle"]) + 1e-3)

    def femur(uu):
        shaft = _ellipsoid(uu, 0 * uu, 0.0, 0, 0.15, 1.0) * _step(-0.15 - v, px)
        condyles = _ellipsoid(uu, v, 0.0, -0.13, 0.33, 0.17)
        marrow = _ellipsoid(uu, 0 * uu, 0.0, 0, 0.1, 1.0) * _step(-0.25 - v, px)
        return np.maximum(shaft, condyles) - 0.5 * marrow

    def tibia(uu):
        plateau = _ellipsoid(uu, v, 0.02, 0.2, 0.35, 0.1)
        shaft = _ellipsoid(uu, 0 * uu, 0.02, 0, 0.16, 1.0) * _step(v - 0.2, px)
        marrow = _ellipsoid(uu, 0 * uu, 0.02, 0, 0.11, 1.0) * _step(v - 0.3, px)
        fibula = (_ellipsoid(uu, v, fibula_x, 0.3, 0.07, 0.06)
                  + _ellipsoid(uu, 0 * uu, fibula_x, 0, 0.045, 1.0) * _step(v - 0.3, px))
        return np.maximum(plateau, shaft) - 0.5 * marrow + 0.6 * fibula

    is_femur = _col(location == "distal femur")
    intact_femur, intact_tibia = femur(u), tibia(u)
    moved_femur, moved_tibia = femur(u - shift), tibia(u - shift)
    bone_femur = intact_femur + beyond * is_femur * (moved_femur - intact_femur)
    bone_tibia = intact_tibia + beyond * (1 - is_femur) * (moved_tibia - intact_tibia)
    gap = _band(line, 0.6 * px, px) * is_fracture
    bone = (bone_femur + bone_tibia) * (1 - 0.85 * gap)
    attenuation += 1.2 * bone + 0.2 * _ellipsoid(u, v, 0.0, -0.12, 0.12, 0.14)
    in_bone = (np.maximum(intact_femur * is_femur, intact_tibia * (1 - is_femur)) > 0.2)
    mask = np.maximum(mask, _band(line, 1.0 * px, px) * is_fracture * in_bone)

    image = 1 - np.exp(-1.1 * np.clip(attenuation, 0, None))
    return image / 0.85, mask


_KNEE_MRI = {"air": 0.0, "fat": 0.15, "muscle": 0.28, "marrow": 0.12, "bone": 0.03, "cartilage": 0.55,
             "tendon": 0.03, "fluid": 1.0}


def _knee_mri(u, v, px, labels, params, present, rng):
    j = params["jitter"]
    mask = np.zeros_like(u)
    # Sagittal slice, anterior on the image's left.
    layers = [("fat", _ellipse(u, v, 0.02, 0, _col(0.62 + 0.04 * j[:, 0]), 1.4, px)),
              ("muscle", _ellipse(u, v, 0.3, 0.05, 0.27, 1.0, px)),
              ("muscle", _ellipse(u, v, -0.18, -0.75, 0.22, 0.4, px))]

    # Joint effusion: fluid distends the suprapatellar recess above the patella, behind the quadriceps tendon.
    is_effusion = _col(present & (labels["finding"] == "joint effusion"))
    depth = _mm(labels["size_mm"], "knee")
    recess = _ellipse(u, v, -0.22 - depth * 0.2, -0.42, 0.05 + depth * 0.5, 0.2 + depth * 0.6, px) * is_effusion
    layers.append(("fluid", recess))
    mask = np.maximum(mask, recess)

    layers += [("cartilage", _ellipse(u, v, 0.05, -0.12, 0.3, 0.24, px)),
               ("bone", _ellipse(u, v, 0.05, -0.12, 0.28, 0.22, px) + _band(u - 0.02, 0.17, px) * _step(-0.1 - v, px)),
               ("marrow", _ellipse(u, v, 0.05, -0.12, 0.26, 0.2, px) + _band(u - 0.02, 0.14, px) * _step(-0.15 - v, px)),
               ("cartilage", _ellipse(u, v, 0.05, 0.22, 0.31, 0.12, px)),
               ("bone", _ellipse(u, v, 0.05, 0.24, 0.3, 0.1, px) + _band(u - 0.05, 0.18, px) * _step(v - 0.25, px)),
               ("marrow", _ellipse(u, v, 0.05, 0.25, 0.28, 0.08, px) + _band(u - 0.05, 0.15, px) * _step(v - 0.28, px)),
               ("bone", _ellipse(u, v, -0.39, -0.12, 0.07, 0.14, px)),
               ("marrow", _ellipse(u, v, -0.39, -0.12, 0.05, 0.12, px)),
               ("tendon", _band(u + 0.4, 0.025, px) * _step(-0.24 - v, px) * _step(v + 0.9, px)),
               ("tendon", _band(u + 0.4 - 0.3 * (v - 0.02), 0.02, px) * _step(v - 0.02, px) * _step(0.4 - v, px)),
               ("tendon", _band((u - 0.05) + 0.6 * (v - 0.1), 0.02, px) * _step(0.17 - np.abs(v - 0.1), px))]
    return _composite(layers, _KNEE_MRI, 0.0, u.shape), mask


_ULTRASOUND = {"near": 0.55, "muscle": 0.3, "liver": 0.45, "spleen": 0.5, "kidney": 0.2, "sinus": 0.9,
               "diaphragm": 1.0, "lung": 0.35, "fluid": 0.02, "lesion": 1.0}


def _abdomen_ultrasound(u, v, px, labels, params, present, rng):
    n = u.shape[0]
    j = params["jitter"]
    finding, size, location = labels["finding"], labels["size_mm"], labels["location"]
    mask = np.zeros_like(u)
    # Left upper quadrant views mirror the right upper quadrant layout, with spleen for liver.
    mirror = _col(np.where(labels["side"] == "left", -1.0, 1.0))
    uu = u * mirror
    depth = np.sqrt(uu**2 + (v + 1.05) ** 2)
    organ = np.where(_col(labels["side"] == "left"), 0.0, 1.0)

    diaphragm_r = _col(1.75 + 0.05 * j[:, 0]) + 0.12 * uu
    layers = [("near", np.ones_like(u)),
              ("muscle", _step(depth - 0.22, px) * _step(0.32 - depth, px)),
              ("liver", _step(depth - 0.32, px) * _step(diaphragm_r - depth, px) * organ),
              ("spleen", _step(depth - 0.32, px) * _step(diaphragm_r - 0.25 - depth, px) * (1 - organ)),
              ("near", _step(depth - 0.32, px) * _step(depth - (diaphragm_r - 0.25), px) * (1 - organ)),
              ("diaphragm", _band(depth - diaphragm_r, 0.025, px)),
              ("lung", _step(depth - diaphragm_r - 0.025, px))]

    kidney_cx, kidney_cy = _col(0.15 + 0.05 * j[:, 1]), _col(0.2 + 0.05 * j[:, 2])
    # Free fluid: an anechoic stripe in the hepatorenal (Morison's) pouch or around the spleen.
    is_fluid = _col(present & (finding == "free fluid"))
    thickness = _mm(size, "abdomen")
    stripe = (_ellipse(uu, v, kidney_cx, kidney_cy - 0.02, 0.3 + thickness, 0.16 + thickness, px)
              * _step(kidney_cy - v, px) * is_fluid)
    layers.append(("fluid", stripe))
    layers += [("kidney", _ellipse(uu, v, kidney_cx, kidney_cy, 0.3, 0.16, px)),
               ("sinus", _ellipse(uu, v, kidney_cx, kidney_cy, 0.17, 0.06, px))]
    mask = np.maximum(mask, stripe * (1 - _ellipse(uu, v, kidney_cx, kidney_cy, 0.3, 0.16, px)))

    is_cyst = _col(present & (finding == "kidney cyst"))
    radius = _mm(size, "abdomen") / 2
    cyst = _ellipse(uu, v, kidney_cx + 0.22, kidney_cy - 0.03, radius, radius, px) * is_cyst
    layers.append(("fluid", cyst))
    mask = np.maximum(mask, cyst)

    is_lesion = present & (finding == "liver lesion")
    for k in range(N_POSITIONS):
        drawn = _col(is_lesion & (labels["count"] > k))
        pos = params["positions"][:, k]
        r = radius * (1.0 if k == 0 else 0.7)
        lesion = _ellipse(uu, v, _col(-0.35 + 0.5 * pos[:, 0]), _col(-0.35 + 0.35 * pos[:, 1]), r, r, px) * drawn
        layers.append(("lesion", lesion))
        mask = np.maximum(mask, lesion)

    echo = _composite(layers, _ULTRASOUND, 0.5, u.shape)
    fluid = np.maximum(stripe, cyst)
    # Posterior acoustic enhancement: tissue deep to fluid looks brighter.
    behind = np.clip(np.cumsum(fluid, axis=1) * px * 6, 0, 1) * (1 - fluid)
    speckle = np.abs(_smooth_noise(rng, n, u.shape[-1], 0.9, anisotropy=0.5, complex_valued=True))
    speckle = 0.55 + 0.45 * speckle
    attenuation = np.exp(-_col(0.35 + 0.1 * j[:, 3]) * depth)
    image = echo * (1 + 0.5 * behind) * speckle * 0.75 * attenuation * 1.4
    sector = _step(0.62 - np.abs(np.arctan2(uu, v + 1.05)), px) * _step(depth - 0.12, px) * _step(2.0 - depth, px)
    return image * sector, mask * sector


_SCENE_RENDERERS = {
    ("chest", "radiograph"): _chest_radiograph,
    ("chest", "CT"): _chest_ct,
    ("abdomen", "CT"): lambda *args: _abdomen_axial(*args, modality="CT"),
    ("abdomen", "MRI"): lambda *args: _abdomen_axial(*args, modality="MRI"),
    ("abdomen", "ultrasound"): _abdomen_ultrasound,
    ("head", "CT"): lambda *args: _head_axial(*args, modality="CT"),
    ("head", "MRI"): lambda *args: _head_axial(*args, modality="MRI"),
    ("knee", "radiograph"): _knee_radiograph,
    ("knee", "MRI"): _knee_mri,
}


def _apply_modality_nuisances(image, modality, params, rng):
    """Add the artifacts and noise typical of each modality to images in [0, 1]."""
    n, size = image.shape[0], image.shape[-1]
    artifact = _col(params["artifact"])
    if modality == "MRI":
        # Coil sensitivity (bias field), phase-encoding ghost and Rician noise.
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        tilt = params["jitter"][:, 4:6]
        bias = 1 + 0.25 * (_col(tilt[:, 0]) * coords[None, None, :] + _col(tilt[:, 1]) * coords[None, :, None])
        image = image * bias
        image = image + artifact * 0.12 * np.roll(image, size // 4, axis=1)
        sigma = _col(params["noise"])
        real = image + sigma * rng.standard_normal(image.shape).astype(np.float32)
        imaginary = sigma * rng.standard_normal(image.shape).astype(np.float32)
        return np.sqrt(real**2 + imaginary**2)
    if modality == "CT":
        # Streaks radiating from the center, as from beam hardening.
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        theta = np.arctan2(coords[:, None], coords[None, :])[None]
        streaks = np.cos(8 * theta + _col(params["angle"]) * 6)
        image = image + artifact * 0.03 * streaks * (image > 0.05)
    elif modality == "radiograph":
        # Collimation: the exposed field ends before the image border.
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        edge = _col(0.9 + 0.05 * params["jitter"][:, 3])
        field = _step(edge - np.abs(coords)[None, None, :], 2 / size) * _step(edge - np.abs(coords)[None, :, None], 2 / size)
        image = image * (1 - artifact * (1 - field) * 0.85)
    elif modality == "ultrasound":
        # Reverberation: bright horizontal bands in the near field.
        rows = (np.arange(size, dtype=np.float32) + 0.5) / size
        bands = (np.cos(rows * 2 * np.pi * 9) > 0.8) * (rows < 0.35)
        image = image + artifact * 0.12 * bands[None, :, None] * (image > 0.01)
        return image + _col(params["noise"]) * 0.5 * rng.standard_normal(image.shape).astype(np.float32) * (image > 0.01)
    return image + _col(params["noise"]) * rng.standard_normal(image.shape).astype(np.float32)


def render_phantoms(
    anatomy: str,
    modality: str,
    labels: dict[str, np.ndarray],
    params: dict[str, np.ndarray],
    image_size: int,
    noise_seed: int,
    draw_findings: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a batch of phantoms of one scene.

    Args:
        anatomy, modality: a key of :data:`SCENES`.
        labels: arrays of length n: ``finding``, ``side``, ``location`` (str),
            ``size_mm``, ``count`` (int), as sampled by the corpus.
        params: nuisance parameters from :func:`sample_render_params`.
        image_size: side S of the square output, in pixels.
        noise_seed: seed of the noise and texture fields.
        draw_findings: False renders the same images without any finding.

    Returns:
        ``(images, finding_masks)``: uint8 array (n, S, S) and float32 array
        (n, S, S) in [0, 1] marking where a finding changed the image.

    Raises:
        ValueError: for an unknown scene or a non-positive ``image_size``.
    """
    if (anatomy, modality) not in _SCENE_RENDERERS:
        raise ValueError(f"Unknown scene ({anatomy!r}, {modality!r}); expected one of {sorted(SCENES)}.")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}.")
    n = len(labels["finding"])
    rng = np.random.default_rng(noise_seed)

    coords = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size * 2 - 1
    x, y = coords[None, None, :], coords[None, :, None]
    theta, scale = _col(params["rotation"]), _col(params["scale"])
    xs, ys = x - _col(params["shift_x"]), y - _col(params["shift_y"])
    u = (np.cos(theta) * xs + np.sin(theta) * ys) / scale
    v = (-np.sin(theta) * xs + np.cos(theta) * ys) / scale
    px = (2.0 / image_size) / scale

    present = np.asarray(labels["finding"]) != "normal"
    if not draw_findings:
        present = np.zeros(n, dtype=bool)
    image, mask = _SCENE_RENDERERS[(anatomy, modality)](u, v, px, labels, params, present, rng)

    image = _blur(np.clip(image, 0, 1.5).astype(np.float32), params["blur"])
    image = _apply_modality_nuisances(image, modality, params, rng)
    image = np.clip(image, 0, 1) ** _col(params["gamma"])
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return pixels, np.clip(mask, 0, 1).astype(np.float32)
