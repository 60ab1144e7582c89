"""The embedded phantom corpus: schema, determinism, caching, caption-label consistency."""

import collections

import datasets
import numpy as np
import pytest
from PIL import Image

from medgap_utils.config import get_profile
from medgap_utils.data import (
    CORPUS_FEATURES,
    FINDINGS,
    PHANTOM_FEATURES,
    PHANTOM_VOCABULARY,
    all_groups,
    caption_mentions,
    load_phantom_corpus,
    parse_caption,
    phantom_corpus_path,
    validate_corpus,
)
from medgap_utils.data.phantom import SCENES

SIZES = (600, 60, 60)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("medgap-cache")
        patch.setenv("MEDGAP_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def corpus(cache):
    return load_phantom_corpus("ci", seed=0, sizes=SIZES, image_size=64)


def test_corpus_splits_and_features(corpus):
    assert list(corpus) == ["train", "validation", "test"]
    assert [len(corpus[split]) for split in corpus] == list(SIZES)
    for split in corpus.values():
        assert split.features == PHANTOM_FEATURES
        for column, feature in CORPUS_FEATURES.items():
            assert split.features[column] == feature


def test_corpus_passes_validation(corpus):
    validate_corpus(corpus)


def test_corpus_images_are_grayscale_at_image_size(corpus):
    image = corpus["train"][0]["image"]
    assert isinstance(image, Image.Image)
    assert image.mode == "L"
    assert image.size == (64, 64)


def test_corpus_image_ids_unique_across_splits(corpus):
    ids = [image_id for split in corpus.values() for image_id in split["image_id"]]
    assert len(set(ids)) == len(ids)


def test_same_seed_gives_identical_bytes(cache, tmp_path, monkeypatch, corpus):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path))
    again = load_phantom_corpus("ci", seed=0, sizes=SIZES, image_size=64)
    first = corpus["train"].cast_column("image", datasets.Image(decode=False))
    second = again["train"].cast_column("image", datasets.Image(decode=False))
    assert [row["bytes"] for row in first["image"]] == [row["bytes"] for row in second["image"]]
    assert first["caption"] == second["caption"]


def test_other_seed_gives_other_corpus(cache):
    other = load_phantom_corpus("ci", seed=1, sizes=(50, 5, 5), image_size=64)
    same = load_phantom_corpus("ci", seed=0, sizes=(50, 5, 5), image_size=64)
    assert other["train"]["caption"] != same["train"]["caption"]


def test_split_size_does_not_change_other_splits(cache):
    small = load_phantom_corpus("ci", seed=0, sizes=(40, 10, 10), image_size=64)
    larger_test = load_phantom_corpus("ci", seed=0, sizes=(40, 10, 30), image_size=64)
    assert small["train"]["caption"] == larger_test["train"]["caption"]


def test_cached_corpus_is_reloaded(cache, corpus):
    path = phantom_corpus_path("ci", seed=0, sizes=SIZES, image_size=64)
    assert (path / "dataset_dict.json").exists()
    marker = path / "train" / "state.json"
    before = marker.stat().st_mtime_ns
    load_phantom_corpus("ci", seed=0, sizes=SIZES, image_size=64)
    assert marker.stat().st_mtime_ns == before


def test_damaged_cached_corpus_is_generated_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path))
    first = load_phantom_corpus("ci", seed=0, sizes=(20, 8, 8), image_size=32)
    captions = first["validation"]["caption"]
    path = phantom_corpus_path("ci", seed=0, sizes=(20, 8, 8), image_size=32)
    arrow_file = next((path / "validation").glob("*.arrow"))
    # A new, cut-short file in its place: truncating the memory-mapped one would crash this process.
    head = arrow_file.read_bytes()[:200]
    arrow_file.unlink()
    arrow_file.write_bytes(head)

    again = load_phantom_corpus("ci", seed=0, sizes=(20, 8, 8), image_size=32)

    assert again["validation"]["caption"] == captions
    assert arrow_file.stat().st_size > 200


def test_profile_sizes_are_default(cache):
    profile = get_profile("ci")
    path = phantom_corpus_path(profile)
    assert path == phantom_corpus_path("ci", sizes=profile.corpus_sizes, image_size=profile.image_size)


@pytest.mark.parametrize("sizes", [(0, 1, 1), (1, 2), {"training": 3}])
def test_invalid_sizes_raise(sizes, cache):
    with pytest.raises(ValueError, match="sizes"):
        load_phantom_corpus("ci", sizes=sizes)


def test_invalid_image_size_raises(cache):
    with pytest.raises(ValueError, match="image_size"):
        load_phantom_corpus("ci", sizes=(2, 2, 2), image_size=4)


def test_every_finding_and_group_occurs(corpus):
    findings = set(corpus["train"]["finding"])
    assert findings == set(FINDINGS) | {"normal"}
    assert set(corpus["train"]["group"]) == set(all_groups())


def test_scene_pairs_are_the_plausible_ones(corpus):
    pairs = set(zip(corpus["train"]["anatomy"], corpus["train"]["modality"]))
    assert pairs == set(SCENES)
    for anatomy, modality, finding in zip(corpus["train"]["anatomy"], corpus["train"]["modality"],
                                          corpus["train"]["finding"]):
        assert finding == "normal" or finding in SCENES[(anatomy, modality)]


def test_label_sentinels(corpus):
    train = corpus["train"]
    for finding, size, count, location in zip(train["finding"], train["size_mm"], train["count"], train["location"]):
        if finding == "normal":
            assert (size, count, location) == (-1, 0, "none")
        elif finding in ("cardiomegaly", "hydrocephalus", "fracture"):
            assert size == -1
        else:
            assert size > 0
            assert count >= 1


def test_group_is_finding_or_normal_anatomy(corpus):
    train = corpus["train"]
    for finding, anatomy, group in zip(train["finding"], train["anatomy"], train["group"]):
        expected = f"normal {anatomy}" if finding == "normal" else finding
        assert group == expected


def test_captions_agree_with_labels_over_whole_corpus(corpus):
    """Every label a caption states equals the image's label; no absent finding is named."""
    columns = ("modality", "anatomy", "finding", "side", "location", "count", "size_mm")
    for split in corpus.values():
        for row in split.remove_columns("image"):
            parsed = parse_caption(row["caption"])
            assert parsed["finding"] == row["finding"], row["caption"]
            assert row["finding"] not in parsed["negated"], row["caption"]
            for mention_column, value, negated, _ in caption_mentions(row["caption"]):
                if negated:
                    continue
                if mention_column in columns:
                    assert value == row[mention_column], (mention_column, row["caption"])


def test_captions_always_name_modality_or_study(corpus):
    train = corpus["train"]
    named = [parse_caption(caption)["modality"] is not None for caption in train["caption"]]
    assert all(named)


def test_captions_are_varied(corpus):
    captions = corpus["train"]["caption"]
    assert len(set(captions)) / len(captions) > 0.8
    per_group = collections.defaultdict(set)
    for caption, group in zip(captions, corpus["train"]["group"]):
        per_group[group].add(caption)
    assert min(len(texts) for texts in per_group.values()) >= 5


def test_captions_use_negations_arrows_and_abbreviations(corpus):
    captions = corpus["train"]["caption"]
    assert any(caption.startswith("No ") or " No " in caption for caption in captions)
    assert any("(arrow" in caption for caption in captions)
    for abbreviation in ("CT", "MRI", "T2-weighted", "CXR"):
        assert any(abbreviation in caption for caption in captions), abbreviation


def test_vocabulary_phrases_unique_within_column():
    for column, values in PHANTOM_VOCABULARY.items():
        phrases = [phrase.lower() for value_phrases in values.values() for phrase in value_phrases]
        assert len(phrases) == len(set(phrases)), column


def test_vocabulary_covers_every_finding():
    assert set(PHANTOM_VOCABULARY["finding"]) == set(FINDINGS) | {"normal"}


def test_parse_caption_reads_negations():
    parsed = parse_caption("Chest radiograph showing a 14 mm nodule in the right upper zone. No pleural effusion.")
    assert parsed["finding"] == "nodule"
    assert parsed["negated"] == ["pleural effusion"]
    assert parsed["side"] == "right"
    assert parsed["location"] == "upper zone"
    assert parsed["size_mm"] == 14
    assert parsed["modality"] == "radiograph"
    assert parsed["anatomy"] == "chest"


def test_parse_caption_reads_centimetres_and_counts():
    parsed = parse_caption("Axial CT of the abdomen: two hypodense liver lesions (the largest 2.3 cm) in the left hepatic lobe.")
    assert parsed["size_mm"] == 23
    assert parsed["count"] == 2
    assert parsed["location"] == "left lobe"
    assert parsed["side"] is None


def test_images_differ_between_pairs(corpus):
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in corpus["validation"]["image"]])
    flat = pixels.reshape(len(pixels), -1)
    distances = np.abs(flat[:, None, :] - flat[None, :, :]).mean(-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 1.0
