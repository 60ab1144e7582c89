"""Bad input: corrupt images, unusual image modes, bad captions, missing columns, repeated ids."""

import io
import logging

import datasets
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from medgap_utils.data import (
    CORPUS_FEATURES,
    clean_caption,
    decode_image,
    drop_invalid_rows,
    make_dataloader,
    make_image_transform,
    to_rgb,
    validate_corpus,
)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


GOOD = _png(Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)), mode="L"))
TRUNCATED = GOOD[: len(GOOD) // 2]
CORRUPT = b"\x89PNG\r\n\x1a\n" + b"not an image at all" * 4


def _dataset(images, captions, ids=None):
    ids = ids or [f"id-{i}" for i in range(len(images))]
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": data, "path": None} for data in images], "caption": captions, "image_id": ids},
        features=CORPUS_FEATURES,
    )


def test_truncated_bytes_fail_to_decode():
    with pytest.raises(ValueError, match="cannot decode"):
        decode_image({"bytes": TRUNCATED, "path": None})


def test_corrupt_bytes_fail_to_decode():
    with pytest.raises(ValueError, match="cannot decode"):
        decode_image({"bytes": CORRUPT, "path": None})


def test_drop_invalid_rows_drops_unreadable_images(caplog):
    dataset = _dataset([GOOD, TRUNCATED, CORRUPT, GOOD], ["a", "b", "c", "d"])
    with caplog.at_level(logging.WARNING):
        cleaned = drop_invalid_rows(dataset)
    assert cleaned["image_id"] == ["id-0", "id-3"]
    assert "2 with unreadable image" in caplog.text


def test_drop_invalid_rows_drops_empty_and_whitespace_captions(caplog):
    dataset = _dataset([GOOD] * 4, ["a nodule", "", "   \n\t", "an  effusion\n"])
    with caplog.at_level(logging.WARNING):
        cleaned = drop_invalid_rows(dataset)
    assert cleaned["caption"] == ["a nodule", "an effusion"]
    assert "2 with empty caption" in caplog.text


def test_drop_invalid_rows_keeps_first_of_duplicate_ids(caplog):
    dataset = _dataset([GOOD] * 3, ["first", "second", "third"], ids=["x", "x", "y"])
    with caplog.at_level(logging.WARNING):
        cleaned = drop_invalid_rows(dataset)
    assert cleaned["caption"] == ["first", "third"]
    assert "1 with duplicate image_id" in caplog.text


def test_drop_invalid_rows_missing_column_raises():
    with pytest.raises(ValueError, match="'text' not found"):
        drop_invalid_rows(_dataset([GOOD], ["a"]), caption_column="text")


def test_clean_caption_collapses_whitespace():
    assert clean_caption("  CT\tof the\n\nchest  ") == "CT of the chest"
    assert clean_caption(None) == ""


def test_dataloader_names_row_with_unreadable_image():
    dataset = _dataset([GOOD, CORRUPT], ["a", "b"])
    loader = make_dataloader(dataset, 2, transform=make_image_transform(16),
                             tokenizer=open_clip.get_tokenizer("ViT-B-32"), shuffle=False, seed=0, num_workers=0)
    with pytest.raises(ValueError, match="Row 1 .*drop_invalid_rows"):
        next(iter(loader))


def test_16_bit_image_is_rescaled_not_saturated():
    values = np.linspace(0, 4095, 16 * 16).reshape(16, 16).astype(np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (16, 16, 3)
    assert rgb.min() == 0
    assert rgb.max() == 255
    assert len(np.unique(rgb[..., 0])) > 200


def test_16_bit_constant_image_becomes_black():
    image = Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16))
    assert np.asarray(to_rgb(image)).max() == 0


def test_rgba_is_composited_over_black():
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)
    pixels[..., :3] = 200
    pixels[..., 3] = 128
    rgb = np.asarray(to_rgb(Image.fromarray(pixels, mode="RGBA")))
    assert rgb.shape == (4, 4, 3)
    assert abs(int(rgb[0, 0, 0]) - 100) <= 1


def test_palette_image_is_expanded_through_palette():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * (256 * 3 - 6))
    rgb = np.asarray(to_rgb(image))
    assert tuple(rgb[0, 0]) == (10, 20, 30)


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "P", "LA", "1", "F"])
def test_transform_accepts_every_mode(mode):
    image = Image.new("L", (20, 20), 90).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((20, 20), 300, dtype=np.uint16))
    tensor = make_image_transform(8)(image)
    assert tensor.shape == (3, 8, 8)
    assert torch.isfinite(tensor).all()


def test_validate_rejects_missing_columns():
    dataset = _dataset([GOOD], ["a"]).remove_columns("image_id")
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['image_id'\]"):
        validate_corpus(dataset)


def test_validate_rejects_wrong_feature_type():
    features = datasets.Features({**CORPUS_FEATURES, "image_id": datasets.Value("int64")})
    dataset = datasets.Dataset.from_dict(
        {"image": [{"bytes": GOOD, "path": None}], "caption": ["a"], "image_id": [3]}, features=features
    )
    with pytest.raises(ValueError, match="image_id.*cast_column"):
        validate_corpus(dataset)


@pytest.mark.parametrize("caption", ["", "   ", "\n\t"])
def test_validate_rejects_empty_captions(caption):
    with pytest.raises(ValueError, match="empty or whitespace-only caption.*drop_invalid_rows"):
        validate_corpus(_dataset([GOOD, GOOD], ["fine", caption]))


def test_validate_rejects_duplicate_ids():
    with pytest.raises(ValueError, match=r"duplicate image_id value\(s\), e.g. \['x'\]"):
        validate_corpus(_dataset([GOOD, GOOD], ["a", "b"], ids=["x", "x"]))


def test_validate_logs_over_long_captions(caplog):
    with caplog.at_level(logging.WARNING):
        validate_corpus(_dataset([GOOD], ["word " * 200]))
    assert "longer than" in caplog.text


def test_validate_rejects_empty_dataset_and_wrong_type():
    with pytest.raises(ValueError, match="no rows"):
        validate_corpus(_dataset([], []))
    with pytest.raises(TypeError, match="datasets.Dataset"):
        validate_corpus([{"image": None}])


def test_validate_names_split():
    corpus = datasets.DatasetDict({"train": _dataset([GOOD], ["a"]), "test": _dataset([GOOD], [" "])})
    with pytest.raises(ValueError, match="split 'test'"):
        validate_corpus(corpus)
