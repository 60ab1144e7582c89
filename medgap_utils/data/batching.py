"""From a corpus to training batches: image transforms, tokenization, collate, DataLoader.

A batch is a dict with

- ``images``: float32 tensor (B, 3, H, W), normalized with the encoder's mean/std,
- ``texts``: int64 tensor (B, L) of token ids from the encoder's tokenizer,
- ``index``: int64 tensor (B,) of the rows of the dataset the pairs come from.

Shuffling and training augmentations are seeded: the same ``seed`` gives the
same order and the same crops in every run, with any number of workers.
Horizontal flips are never applied, because captions name the side
(right/left) of findings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import datasets
import numpy as np
import torch
from PIL import Image

from .images import decode_image, to_rgb

logger = logging.getLogger(__name__)

#: CLIP's image normalization (open_clip.constants.OPENAI_DATASET_MEAN/STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageTransform:
    """Resize an image to ``image_size`` square, convert it to RGB and normalize it.

    With ``train=True`` a random crop covering 80-100 % of the area, with an
    aspect ratio between 0.9 and 1.1, is taken before resizing. Call it as
    ``transform(image, generator=None)``; the optional ``torch.Generator``
    makes the crop reproducible. Returns a float32 tensor (3, H, W).
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], train: bool):
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.train = train

    def _crop_box(self, width: int, height: int, generator: torch.Generator | None):
        draws = torch.rand(4, generator=generator).tolist()
        area = (0.8 + 0.2 * draws[0]) * width * height
        ratio = float(np.exp(np.log(0.9) + (np.log(1.1) - np.log(0.9)) * draws[1]))
        crop_width = min(width, max(1, int(round((area * ratio) ** 0.5))))
        crop_height = min(height, max(1, int(round((area / ratio) ** 0.5))))
        left = int(draws[2] * (width - crop_width + 1))
        top = int(draws[3] * (height - crop_height + 1))
        return left, top, left + crop_width, top + crop_height

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        image = to_rgb(decode_image(image))
        if self.train:
            image = image.crop(self._crop_box(image.width, image.height, generator))
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - self.mean) / self.std

    def __repr__(self) -> str:
        return f"ImageTransform(image_size={self.image_size}, train={self.train})"


def make_image_transform(
    image_size: int,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    train: bool = False,
) -> ImageTransform:
    """Return a transform PIL image -> float32 tensor (3, image_size, image_size).

    Any PIL mode is accepted (see :func:`medgap_utils.data.images.to_rgb`).
    ``mean`` and ``std`` are per-channel values in [0, 1] units; pass the
    encoder's (open_clip models carry them in ``model.visual.image_mean``).

    Raises:
        ValueError: for a non-positive ``image_size`` or mean/std not of length 3.
    """
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}.")
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != 3:
            raise ValueError(f"{name} must have 3 values (one per RGB channel), got {values!r}.")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std!r}.")
    return ImageTransform(int(image_size), mean, std, bool(train))


def default_num_workers() -> int:
    """Loader worker processes that suit this machine: none up to 2 cores, else cores - 1 (at most 8).

    On 2 cores a worker competes with the training step for the same cores,
    and decoding small PNGs in the main process is cheaper than that.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


class _EpochSampler(torch.utils.data.Sampler):
    """Yield ``(row, epoch)``; epoch e is shuffled with the seed (seed, e), so orders never depend on history."""

    def __init__(self, size: int, shuffle: bool, seed: int):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = range(self.size)
        for row in order:
            yield row, epoch


class _PairDataset(torch.utils.data.Dataset):
    def __init__(self, dataset: datasets.Dataset, transform: Callable, seed: int):
        self.dataset = dataset.select_columns(["image", "caption"])
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        row, epoch = key
        try:
            item = self.dataset[row]
            if getattr(self.transform, "train", False):
                generator = torch.Generator().manual_seed(hash((self.seed, epoch, row)) & 0x7FFF_FFFF_FFFF)
                image = self.transform(item["image"], generator=generator)
            else:
                image = self.transform(item["image"])
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(
                f"Row {row} of the dataset has an unreadable image ({error}). "
                "Remove such rows first with medgap_utils.data.drop_invalid_rows(dataset)."
            ) from error
        return image, item["caption"], row


class _Collate:
    def __init__(self, tokenizer: Callable):
        self.tokenizer = tokenizer

    def __call__(self, items):
        images, captions, rows = zip(*items)
        texts = self.tokenizer(list(captions))
        if not isinstance(texts, torch.Tensor):
            texts = torch.as_tensor(texts)
        return {
            "images": torch.stack(images),
            "texts": texts.long(),
            "index": torch.tensor(rows, dtype=torch.long),
        }


def make_dataloader(
    dataset: datasets.Dataset,
    batch_size: int,
    *,
    transform: Callable,
    tokenizer: Callable,
    shuffle: bool,
    seed: int,
    num_workers: int | None = None,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """Return a DataLoader of image-text batches (see the module docstring for the batch layout).

    Args:
        dataset: a ``datasets.Dataset`` in the common schema (``image``, ``caption``).
        batch_size: pairs per batch.
        transform: e.g. :func:`make_image_transform`; called on each PIL image.
        tokenizer: list of captions -> int tensor (B, L), e.g. ``open_clip.get_tokenizer(...)``.
            Captions longer than its context are truncated by it.
        shuffle: reshuffle every epoch; epoch e uses the seed ``(seed, e)``.
        seed: seed of the order and of training augmentations.
        num_workers: loader processes; None picks :func:`default_num_workers`.
        drop_last: drop the last incomplete batch (useful for contrastive losses).

    Raises:
        TypeError: for a dataset that is not a ``datasets.Dataset`` or a
            transform/tokenizer that is not callable.
        ValueError: for a missing column, a non-positive batch size or worker count below 0.
    """
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(
            f"dataset must be a datasets.Dataset, got {type(dataset).__name__}. Pick a split "
            "(corpus['train']) or materialize a streaming dataset with Dataset.from_list(list(stream.take(n)))."
        )
    missing = [column for column in ("image", "caption") if column not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset is missing column(s) {missing}; it has {dataset.column_names}.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    for name, function in (("transform", transform), ("tokenizer", tokenizer)):
        if not callable(function):
            raise TypeError(f"{name} must be callable, got {type(function).__name__}.")
    if num_workers is None:
        num_workers = default_num_workers()
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 or more, got {num_workers}.")

    pairs = _PairDataset(dataset, transform, seed)
    sampler = _EpochSampler(len(pairs), shuffle, seed)
    return torch.utils.data.DataLoader(
        pairs,
        batch_size=int(batch_size),
        sampler=sampler,
        collate_fn=_Collate(tokenizer),
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
