"""The embedded phantom corpus: generation, the declared schema and the on-disk cache.

:func:`load_phantom_corpus` returns a ``DatasetDict`` with ``train``,
``validation`` and ``test`` splits in the common schema plus the label
columns described in :mod:`medgap_utils.data.labels`. The first call
generates and saves it under ``cache_dir("corpora", ...)``; later calls with
the same seed, sizes, image size and generator version load it from there.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Iterator

import datasets
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..config import Profile, cache_dir, config_key, get_profile
from ..io import atomic_path
from .captions import make_caption
from .labels import SCENE_NAMES, sample_labels
from .phantom import render_phantoms, sample_render_params
from .schema import CORPUS_FEATURES

logger = logging.getLogger(__name__)

#: Bump when rendering or captions change, so cached corpora are regenerated.
GENERATOR_VERSION = 1
SPLITS = ("train", "validation", "test")
LABEL_COLUMNS = ("modality", "anatomy", "finding", "side", "location", "size_mm", "count", "group")
_CHUNK = 512

#: Features of the phantom corpus: the common schema and the label columns.
PHANTOM_FEATURES = datasets.Features(
    {
        **CORPUS_FEATURES,
        "modality": datasets.Value("string"),
        "anatomy": datasets.Value("string"),
        "finding": datasets.Value("string"),
        "side": datasets.Value("string"),
        "location": datasets.Value("string"),
        "size_mm": datasets.Value("int32"),
        "count": datasets.Value("int32"),
        "group": datasets.Value("string"),
    }
)


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def generate_split(n: int, seed: int, split: str, image_size: int) -> dict[str, list]:
    """Generate ``n`` phantom image-caption pairs as columns (lists) of the phantom schema.

    Each split draws from its own random stream ``(seed, split)``, so changing
    the size of one split leaves the others unchanged.
    """
    split_index = SPLITS.index(split)
    rng = np.random.default_rng([seed, split_index])
    labels = sample_labels(rng, n)
    params = sample_render_params(rng, n)
    caption_rng = np.random.default_rng([seed, split_index, 1])

    images: list[bytes | None] = [None] * n
    for scene_index, (anatomy, modality) in enumerate(SCENE_NAMES):
        members = np.flatnonzero(labels["scene"] == scene_index)
        for start in range(0, len(members), _CHUNK):
            chunk = members[start:start + _CHUNK]
            chunk_labels = {key: value[chunk] for key, value in labels.items()}
            chunk_params = {key: value[chunk] for key, value in params.items()}
            noise_seed = int(rng.integers(2**31))
            pixels, _ = render_phantoms(anatomy, modality, chunk_labels, chunk_params, image_size, noise_seed)
            for row, image in zip(chunk, pixels):
                images[row] = _png_bytes(image)

    captions = [make_caption({key: value[i] for key, value in labels.items()}, caption_rng) for i in range(n)]
    columns: dict[str, list] = {
        "image": [{"bytes": image, "path": None} for image in images],
        "caption": captions,
        "image_id": [f"phantom-{seed}-{split}-{i:06d}" for i in range(n)],
    }
    for column in LABEL_COLUMNS:
        columns[column] = [value.item() if hasattr(value, "item") else value for value in labels[column]]
    return columns


def _resolve(profile, sizes, image_size) -> tuple[dict[str, int], int]:
    if profile is None or isinstance(profile, str):
        profile = get_profile(profile)
    if not isinstance(profile, Profile):
        raise TypeError(f"profile must be None, a profile name or a Profile, got {type(profile).__name__}.")
    if sizes is None:
        sizes = profile.splits
    elif isinstance(sizes, dict):
        unknown = set(sizes) - set(SPLITS)
        if unknown:
            raise ValueError(f"sizes has unknown split(s) {sorted(unknown)}; expected keys among {SPLITS}.")
        sizes = dict(sizes)
    else:
        sizes = tuple(sizes)
        if len(sizes) != 3:
            raise ValueError(f"sizes must be (train, validation, test) or a dict of split sizes, got {sizes!r}.")
        sizes = dict(zip(SPLITS, sizes))
    for split, size in sizes.items():
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"sizes[{split!r}] must be a positive integer, got {size!r}.")
    image_size = profile.image_size if image_size is None else image_size
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"image_size must be an integer of at least 16 pixels, got {image_size!r}.")
    return {split: int(size) for split, size in sizes.items()}, int(image_size)


def phantom_corpus_path(profile=None, seed: int = 0, sizes=None, image_size=None):
    """Return the cache folder of the phantom corpus with this configuration."""
    sizes, image_size = _resolve(profile, sizes, image_size)
    key = config_key({"generator": GENERATOR_VERSION, "seed": seed, "sizes": sizes, "image_size": image_size})
    return cache_dir("corpora") / f"phantom-{key}"


def load_phantom_corpus(
    profile: Profile | str | None = None,
    seed: int = 0,
    sizes: tuple[int, int, int] | dict[str, int] | None = None,
    image_size: int | None = None,
    *,
    progress: bool = True,
) -> datasets.DatasetDict:
    """Return the phantom corpus, generating and caching it on first use.

    Args:
        profile: a :class:`~medgap_utils.config.Profile`, its name, or None
            for the active profile; gives the default sizes and image size.
        seed: generator seed. The same seed and sizes give identical bytes.
        sizes: pairs per split, as ``(train, validation, test)`` or a dict
            with a subset of those keys; defaults to ``profile.corpus_sizes``.
        image_size: side of the square grayscale PNG images in pixels;
            defaults to ``profile.image_size``.
        progress: show progress bars while the corpus is generated and saved.

    Returns:
        A ``DatasetDict`` with features :data:`PHANTOM_FEATURES`.

    Raises:
        TypeError, ValueError: for an invalid profile, sizes or image size.
    """
    path = phantom_corpus_path(profile, seed, sizes, image_size)
    sizes, image_size = _resolve(profile, sizes, image_size)
    if (path / "dataset_dict.json").exists():
        logger.info("Loading the phantom corpus from %s", path)
        try:
            return datasets.load_from_disk(str(path))
        except (OSError, ValueError) as error:
            # The generator is deterministic, so a damaged copy is replaced by identical bytes.
            logger.warning("The cached phantom corpus at %s cannot be read (%s); generating it again.", path, error)
            shutil.rmtree(path, ignore_errors=True)

    logger.info("Generating the phantom corpus (%s, %d px, seed %d) into %s", sizes, image_size, seed, path)
    splits = {}
    for split, size in tqdm(sizes.items(), desc="phantom corpus", unit="split", disable=not progress):
        splits[split] = datasets.Dataset.from_dict(
            generate_split(size, seed, split, image_size), features=PHANTOM_FEATURES
        )
    corpus = datasets.DatasetDict(splits)
    with atomic_path(path) as temporary, _datasets_progress(progress):
        corpus.save_to_disk(str(temporary))
    return datasets.load_from_disk(str(path))


@contextlib.contextmanager
def _datasets_progress(enabled: bool) -> Iterator[None]:
    """Hide the progress bars of ``datasets`` inside the block unless ``enabled``, then restore them."""
    was_enabled = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
