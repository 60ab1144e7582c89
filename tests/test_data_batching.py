"""From dataset to batches: transforms, tokenization, collate and seeded DataLoaders."""

import datasets
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from medgap_utils.data import (
    CLIP_MEAN,
    CLIP_STD,
    PHANTOM_FEATURES,
    default_num_workers,
    make_dataloader,
    make_image_transform,
)
from medgap_utils.data.corpus import generate_split


@pytest.fixture(scope="module")
def dataset():
    return datasets.Dataset.from_dict(generate_split(40, seed=0, split="train", image_size=48),
                                      features=PHANTOM_FEATURES)


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("ViT-B-32")


def test_transform_output_shape_and_dtype():
    transform = make_image_transform(32)
    tensor = transform(Image.new("L", (64, 64), 128))
    assert tensor.shape == (3, 32, 32)
    assert tensor.dtype == torch.float32


def test_transform_normalizes_with_mean_and_std():
    transform = make_image_transform(8)
    tensor = transform(Image.new("L", (8, 8), 255))
    expected = (1.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(tensor[:, 0, 0], expected, atol=1e-5)


def test_transform_custom_mean_std():
    transform = make_image_transform(4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    tensor = transform(Image.new("L", (4, 4), 0))
    assert torch.allclose(tensor, torch.full((3, 4, 4), -1.0))


def test_train_transform_is_reproducible_with_generator():
    transform = make_image_transform(16, train=True)
    image = Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64) % 251)
    first = transform(image, generator=torch.Generator().manual_seed(3))
    second = transform(image, generator=torch.Generator().manual_seed(3))
    other = transform(image, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("kwargs", [{"image_size": 0}, {"image_size": 8, "mean": (0.5,)}, {"image_size": 8, "std": (0, 1, 1)}])
def test_transform_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        make_image_transform(**kwargs)


def test_dataloader_batch_layout(dataset, tokenizer):
    loader = make_dataloader(dataset, 16, transform=make_image_transform(32), tokenizer=tokenizer,
                             shuffle=False, seed=0, num_workers=0)
    batch = next(iter(loader))
    assert set(batch) == {"images", "texts", "index"}
    assert batch["images"].shape == (16, 3, 32, 32)
    assert batch["images"].dtype == torch.float32
    assert batch["texts"].shape == (16, tokenizer.context_length)
    assert batch["texts"].dtype == torch.long
    assert batch["index"].tolist() == list(range(16))


def test_dataloader_texts_are_tokenized_captions(dataset, tokenizer):
    loader = make_dataloader(dataset, 4, transform=make_image_transform(16), tokenizer=tokenizer,
                             shuffle=True, seed=0, num_workers=0)
    batch = next(iter(loader))
    captions = [dataset[int(i)]["caption"] for i in batch["index"]]
    assert torch.equal(batch["texts"], tokenizer(captions))


def test_dataloader_covers_every_row_once_per_epoch(dataset, tokenizer):
    loader = make_dataloader(dataset, 16, transform=make_image_transform(16), tokenizer=tokenizer,
                             shuffle=True, seed=0, num_workers=0)
    rows = torch.cat([batch["index"] for batch in loader]).tolist()
    assert sorted(rows) == list(range(len(dataset)))


def test_dataloader_drop_last(dataset, tokenizer):
    loader = make_dataloader(dataset, 16, transform=make_image_transform(16), tokenizer=tokenizer,
                             shuffle=True, seed=0, num_workers=0, drop_last=True)
    assert [len(batch["index"]) for batch in loader] == [16, 16]


def _orders(loader, epochs):
    return [torch.cat([batch["index"] for batch in loader]).tolist() for _ in range(epochs)]


def test_same_seed_same_order_and_crops(dataset, tokenizer):
    def build():
        return make_dataloader(dataset, 8, transform=make_image_transform(16, train=True), tokenizer=tokenizer,
                               shuffle=True, seed=7, num_workers=0)
    first, second = build(), build()
    assert _orders(first, 2) == _orders(second, 2)
    assert torch.equal(next(iter(first))["images"], next(iter(second))["images"])


def test_epochs_reshuffle_and_seeds_differ(dataset, tokenizer):
    loader = make_dataloader(dataset, 8, transform=make_image_transform(16), tokenizer=tokenizer,
                             shuffle=True, seed=7, num_workers=0)
    epoch_one, epoch_two = _orders(loader, 2)
    assert epoch_one != epoch_two
    other = make_dataloader(dataset, 8, transform=make_image_transform(16), tokenizer=tokenizer,
                            shuffle=True, seed=8, num_workers=0)
    assert _orders(other, 1)[0] != epoch_one


def test_worker_processes_give_same_batches(dataset, tokenizer):
    def first_batch(workers):
        loader = make_dataloader(dataset, 8, transform=make_image_transform(16, train=True), tokenizer=tokenizer,
                                 shuffle=True, seed=2, num_workers=workers)
        return next(iter(loader))
    in_process, with_worker = first_batch(0), first_batch(1)
    assert torch.equal(in_process["index"], with_worker["index"])
    assert torch.equal(in_process["images"], with_worker["images"])


def test_over_long_caption_is_truncated_to_context(dataset, tokenizer):
    long_dataset = dataset.select(range(2)).map(lambda row: {"caption": "nodule " * 500})
    loader = make_dataloader(long_dataset, 2, transform=make_image_transform(16), tokenizer=tokenizer,
                             shuffle=False, seed=0, num_workers=0)
    assert next(iter(loader))["texts"].shape == (2, tokenizer.context_length)


def test_default_num_workers_is_non_negative():
    assert default_num_workers() >= 0


def test_dataloader_rejects_bad_arguments(dataset, tokenizer):
    transform = make_image_transform(16)
    with pytest.raises(TypeError, match="datasets.Dataset"):
        make_dataloader(datasets.DatasetDict({"train": dataset}), 4, transform=transform, tokenizer=tokenizer,
                        shuffle=False, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        make_dataloader(dataset, 0, transform=transform, tokenizer=tokenizer, shuffle=False, seed=0)
    with pytest.raises(TypeError, match="tokenizer"):
        make_dataloader(dataset, 4, transform=transform, tokenizer="open_clip", shuffle=False, seed=0)
    with pytest.raises(ValueError, match="caption"):
        make_dataloader(dataset.remove_columns("caption"), 4, transform=transform, tokenizer=tokenizer,
                        shuffle=False, seed=0)
