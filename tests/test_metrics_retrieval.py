"""Retrieval ranks and recall against a sort-based brute force, with ties and duplicates."""

import itertools
import logging

import numpy as np
import pytest
import torch

from medgap_utils import metrics


def unit_rows(rows, dimension, seed=0):
    values = np.random.default_rng(seed).normal(size=(rows, dimension))
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def brute_force_ranks(images, texts, image_ids=None, text_groups=None, ties="optimistic"):
    """Rank by sorting the whole gallery of every query, one query at a time.

    Each distinct image and caption is one item; a caption is correct for an
    image when some row pairs them. Ties are broken by sorting correct items
    first (optimistic) or last (pessimistic).
    """
    rows = len(images)
    image_ids = list(range(rows)) if image_ids is None else list(image_ids)
    text_groups = list(range(rows)) if text_groups is None else list(text_groups)

    image_items, text_items = {}, {}
    for row in range(rows):
        image_items.setdefault(image_ids[row], images[row])
        text_items.setdefault(text_groups[row], texts[row])
    correct = {(image_ids[row], text_groups[row]) for row in range(rows)}

    def rank_all(query_items, gallery_items, is_correct):
        ranks = []
        for query_key, query in query_items.items():
            entries = []
            for gallery_key, item in gallery_items.items():
                score = float(np.dot(query, item))
                hit = is_correct(query_key, gallery_key)
                tie_break = 0 if hit == (ties == "optimistic") else 1
                entries.append((-score, tie_break, hit))
            entries.sort()
            ranks.append(1 + [hit for _, _, hit in entries].index(True))
        return ranks

    return {
        "image_to_text": rank_all(image_items, text_items, lambda image, text: (image, text) in correct),
        "text_to_image": rank_all(text_items, image_items, lambda text, image: (image, text) in correct),
    }


def assert_ranks_equal(ranks, expected):
    assert set(ranks) == {"image_to_text", "text_to_image"}
    for direction in expected:
        assert ranks[direction].tolist() == expected[direction], direction


def test_ranks_match_brute_force_for_unique_pairs():
    images = unit_rows(40, 5)
    texts = unit_rows(40, 5, seed=1) + 0.8 * images
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)

    ranks = metrics.retrieval_ranks(images, texts)

    assert_ranks_equal(ranks, brute_force_ranks(images, texts))


def test_ranks_with_several_captions_per_image():
    rng = np.random.default_rng(3)
    image_ids = rng.integers(0, 12, size=40)
    distinct_images = unit_rows(12, 6, seed=4)
    images = distinct_images[image_ids]
    texts = unit_rows(40, 6, seed=5) + images
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)

    ranks = metrics.retrieval_ranks(images, texts, image_ids=image_ids)

    assert len(ranks["image_to_text"]) == len(set(image_ids.tolist()))
    assert len(ranks["text_to_image"]) == 40
    assert_ranks_equal(ranks, brute_force_ranks(images, texts, image_ids=image_ids))


def test_ranks_match_brute_force_with_duplicate_captions():
    rng = np.random.default_rng(6)
    captions = [f"caption {k}" for k in rng.integers(0, 8, size=30)]
    caption_vectors = dict(zip(sorted(set(captions)), unit_rows(8, 6, seed=7)))
    texts = np.stack([caption_vectors[caption] for caption in captions])
    images = unit_rows(30, 6, seed=8) + texts
    images /= np.linalg.norm(images, axis=1, keepdims=True)

    ranks = metrics.retrieval_ranks(images, texts, text_groups=captions)

    assert len(ranks["text_to_image"]) == len(set(captions))
    assert_ranks_equal(ranks, brute_force_ranks(images, texts, text_groups=captions))


def test_ranks_match_brute_force_with_both_groupings():
    rng = np.random.default_rng(9)
    image_ids = rng.integers(0, 10, size=36)
    captions = rng.integers(0, 15, size=36)
    images = unit_rows(10, 5, seed=10)[image_ids]
    texts = unit_rows(15, 5, seed=11)[captions]

    ranks = metrics.retrieval_ranks(images, texts, image_ids=image_ids, text_groups=captions, chunk_size=4)

    assert_ranks_equal(ranks, brute_force_ranks(images, texts, image_ids=image_ids, text_groups=captions))


def exactly_tied_embeddings():
    """Rows whose dot products are exact in float32, so ties are exact."""
    vectors = [np.array(signs) / 2 for signs in itertools.product([-1.0, 1.0], repeat=4)]
    vectors += list(np.eye(4))
    rng = np.random.default_rng(12)
    images = np.stack([vectors[k] for k in rng.integers(0, len(vectors), size=30)]).astype(np.float32)
    texts = np.stack([vectors[k] for k in rng.integers(0, len(vectors), size=30)]).astype(np.float32)
    return images, texts


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic"])
def test_exact_ties_match_brute_force(ties):
    images, texts = exactly_tied_embeddings()

    ranks = metrics.retrieval_ranks(images, texts, ties=ties, chunk_size=7)

    assert_ranks_equal(ranks, brute_force_ranks(images, texts, ties=ties))


def test_tie_rules_differ_on_tiny_case():
    # Image 0 scores 0 with its own caption (e2) and with caption 2 (e3),
    # and scores 1 with caption 1 (e1): one wrong item above, one tied.
    images = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    texts = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)

    optimistic = metrics.retrieval_ranks(images, texts, ties="optimistic")
    pessimistic = metrics.retrieval_ranks(images, texts, ties="pessimistic")

    assert optimistic["image_to_text"][0] == 2
    assert pessimistic["image_to_text"][0] == 3


def test_collapsed_embeddings_show_tie_rules():
    embeddings = np.tile([[0.6, 0.8]], (6, 1)).astype(np.float32)

    optimistic = metrics.retrieval_metrics(embeddings, embeddings, ties="optimistic", ks=(1,))
    pessimistic = metrics.retrieval_metrics(embeddings, embeddings, ties="pessimistic", ks=(1,))

    assert optimistic["image_to_text_R@1"] == 1.0
    assert pessimistic["image_to_text_R@1"] == 0.0
    assert pessimistic["image_to_text_mean_rank"] == 6.0


def test_chunk_size_does_not_change_ranks():
    images, texts = unit_rows(50, 4), unit_rows(50, 4, seed=1)
    reference = metrics.retrieval_ranks(images, texts)

    for chunk_size in (1, 3, 49, 50, 1000):
        ranks = metrics.retrieval_ranks(images, texts, chunk_size=chunk_size)
        assert torch.equal(ranks["image_to_text"], reference["image_to_text"]), chunk_size
        assert torch.equal(ranks["text_to_image"], reference["text_to_image"]), chunk_size


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 16])
def test_small_tiles_match_brute_force_for_scattered_groups(chunk_size):
    # Captions shared by distant images put correct pairs in many tiles, so
    # most tiles are counted only after every best score is known.
    rng = np.random.default_rng(13)
    image_ids = rng.integers(0, 14, size=30)
    captions = rng.integers(0, 6, size=30)
    images = unit_rows(14, 4, seed=14)[image_ids]
    texts = unit_rows(6, 4, seed=15)[captions]

    for ties in ("optimistic", "pessimistic"):
        ranks = metrics.retrieval_ranks(
            images, texts, image_ids=image_ids, text_groups=captions, ties=ties, chunk_size=chunk_size
        )
        expected = brute_force_ranks(images, texts, image_ids=image_ids, text_groups=captions, ties=ties)
        assert_ranks_equal(ranks, expected)


def test_metrics_of_hand_computed_case():
    # Images are one-hot, so score(image q, text t) is coordinate q of the
    # normalized text t. Image 1 scores 0.74 with text 2 and 0.63 with its
    # own text 1: rank 2. Text 1 scores 0.76 with image 3 and 0.63 with
    # image 1: rank 2. Text 2 scores 0.74 and 0.64 with images 1 and 3 and
    # 0.18 with image 2: rank 3. Every other query ranks its partner first.
    images = np.eye(4, dtype=np.float32)
    texts = np.array(
        [
            [0.9, 0.1, 0.1, 0.1],
            [0.1, 0.5, 0.1, 0.6],
            [0.1, 0.8, 0.2, 0.7],
            [0.1, 0.1, 0.1, 0.9],
        ],
        dtype=np.float32,
    )
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)

    assert brute_force_ranks(images, texts) == {"image_to_text": [1, 2, 1, 1], "text_to_image": [1, 2, 3, 1]}
    result = metrics.retrieval_metrics(images, texts, ks=(1, 2))

    assert result["image_to_text_R@1"] == pytest.approx(0.75)
    assert result["image_to_text_R@2"] == pytest.approx(1.0)
    assert result["image_to_text_mean_rank"] == pytest.approx(1.25)
    assert result["image_to_text_median_rank"] == pytest.approx(1.0)
    assert result["image_to_text_MRR"] == pytest.approx(3.5 / 4)
    assert result["text_to_image_R@1"] == pytest.approx(0.5)
    assert result["text_to_image_R@2"] == pytest.approx(0.75)
    assert result["text_to_image_mean_rank"] == pytest.approx(1.75)
    assert result["text_to_image_median_rank"] == pytest.approx(1.5)
    assert result["text_to_image_MRR"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 4)


def test_perfect_pairs_have_full_recall():
    embeddings = unit_rows(20, 8)

    result = metrics.retrieval_metrics(embeddings, embeddings)

    assert result["image_to_text_R@1"] == 1.0
    assert result["text_to_image_R@1"] == 1.0
    assert result["image_to_text_MRR"] == 1.0
    assert result["text_to_image_median_rank"] == 1.0


def test_median_rank_of_even_count_averages_middle_ranks():
    # Image 1's caption is beaten by caption 0 only: ranks are (1, 2).
    images = np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.float32)
    texts = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)

    result = metrics.retrieval_metrics(images, texts)

    assert result["image_to_text_median_rank"] == 1.5


def test_result_keys_follow_ks():
    result = metrics.retrieval_metrics(unit_rows(12, 3), unit_rows(12, 3, seed=1), ks=(1, 3))

    assert set(result) == {
        f"{direction}_{name}"
        for direction in ("image_to_text", "text_to_image")
        for name in ("R@1", "R@3", "mean_rank", "median_rank", "MRR")
    }


def test_differing_grouped_rows_warn(caplog):
    images, texts = unit_rows(4, 3), unit_rows(4, 3, seed=1)

    with caplog.at_level(logging.WARNING, logger="medgap_utils.metrics.retrieval"):
        metrics.retrieval_ranks(images, texts, image_ids=["a", "a", "b", "c"])

    assert "image_ids" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_ranks_match_cpu_ranks():
    images, texts = unit_rows(300, 16), unit_rows(300, 16, seed=1)

    on_cpu = metrics.retrieval_ranks(images, texts, device="cpu")
    on_cuda = metrics.retrieval_ranks(images, texts, device="cuda")

    assert torch.equal(on_cpu["image_to_text"], on_cuda["image_to_text"])
    assert torch.equal(on_cpu["text_to_image"], on_cuda["text_to_image"])
