"""The input contract shared by every metric: shapes, finiteness, normalization, sizes."""

import datasets
import numpy as np
import pytest
import torch

from medgap_utils import metrics
from medgap_utils.metrics._validation import check_labels


def unit_rows(rows, dimension, seed=0):
    values = np.random.default_rng(seed).normal(size=(rows, dimension))
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def test_check_embeddings_returns_float32_tensors():
    images, texts = metrics.check_embeddings(unit_rows(4, 3), torch.from_numpy(unit_rows(4, 3, seed=1)))

    assert isinstance(images, torch.Tensor)
    assert images.dtype == torch.float32
    assert texts.dtype == torch.float32
    assert images.shape == (4, 3)


def test_check_embeddings_detaches_gradients():
    texts = torch.tensor(unit_rows(4, 3), requires_grad=True)

    _, checked = metrics.check_embeddings(unit_rows(4, 3), texts)

    assert not checked.requires_grad


def test_mismatched_rows_raise():
    with pytest.raises(ValueError, match="same number of rows.*got 4 and 5"):
        metrics.modality_gap(unit_rows(4, 3), unit_rows(5, 3))


def test_mismatched_dimensions_raise():
    with pytest.raises(ValueError, match="same dimension D.*got 3 and 2"):
        metrics.true_pair_cosine(unit_rows(4, 3), unit_rows(4, 2))


def test_one_dimensional_input_raises():
    with pytest.raises(ValueError, match=r"shape \(N, D\), got shape \(3,\)"):
        metrics.modality_gap(np.ones(3), np.ones(3))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_values_raise(bad_value):
    images = unit_rows(4, 3)
    images[2, 1] = bad_value

    with pytest.raises(ValueError, match="image_embeddings contains NaN or infinite values.*row 2"):
        metrics.modality_gap(images, unit_rows(4, 3))


def test_unnormalized_rows_raise_with_norm_range():
    texts = 3.0 * unit_rows(4, 3)

    with pytest.raises(ValueError, match="text_embeddings must be L2-normalized") as error:
        metrics.modality_gap(unit_rows(4, 3), texts)

    assert "from 3 to 3" in str(error.value)
    assert "normalize=True" in str(error.value)


def test_normalize_flag_normalizes_rows():
    images = 3.0 * unit_rows(4, 3)
    texts = 0.5 * unit_rows(4, 3, seed=1)

    scaled = metrics.modality_gap(images, texts, normalize=True)

    assert scaled == pytest.approx(metrics.modality_gap(unit_rows(4, 3), unit_rows(4, 3, seed=1)), abs=1e-6)


def test_normalize_rejects_zero_rows():
    images = unit_rows(4, 3)
    images[1] = 0.0

    with pytest.raises(ValueError, match="rows of zeros.*row 1"):
        metrics.check_embeddings(images, unit_rows(4, 3), normalize=True)


def test_list_input_raises_type_error():
    with pytest.raises(TypeError, match="torch.Tensor or a numpy.ndarray"):
        metrics.modality_gap([[1.0, 0.0]], [[0.0, 1.0]])


def test_boolean_tensor_raises_type_error():
    with pytest.raises(TypeError, match="real numbers"):
        metrics.modality_gap(torch.ones(2, 2, dtype=torch.bool), torch.eye(2))


def test_too_few_rows_for_cone_raise():
    with pytest.raises(ValueError, match="at least 2 rows.*got 1"):
        metrics.intra_modality_cosine(unit_rows(1, 3))


def test_too_many_clusters_raise():
    labels = [0, 1, 0, 1]

    with pytest.raises(ValueError, match="n_clusters \\(9\\) cannot exceed.*2N = 8"):
        metrics.clustering_scores(unit_rows(4, 3), unit_rows(4, 3, seed=1), labels, n_clusters=9)


def test_single_class_labels_raise():
    with pytest.raises(ValueError, match="at least 2 distinct classes, got 1"):
        metrics.clustering_scores(unit_rows(4, 3), unit_rows(4, 3, seed=1), ["a"] * 4)


def test_too_few_pairs_for_folds_raise():
    labels = [0, 1, 0]

    with pytest.raises(ValueError, match="folds=5 needs at least 5 pairs, got 3"):
        metrics.linear_probe_accuracy(unit_rows(3, 3), unit_rows(3, 3, seed=1), labels)
    with pytest.raises(ValueError, match="folds=5 needs at least 5 pairs, got 3"):
        metrics.modality_separability(unit_rows(3, 3), unit_rows(3, 3, seed=1))


def test_knn_with_k_above_training_rows_raises():
    labels = [0, 1] * 5

    with pytest.raises(ValueError, match="k=50 exceeds the 8 rows"):
        metrics.knn_accuracy(unit_rows(10, 3), unit_rows(10, 3, seed=1), labels, k=50, modality="image")


def test_labels_of_wrong_length_raise():
    with pytest.raises(ValueError, match="one label per row \\(4\\), got 3 labels"):
        metrics.knn_accuracy(unit_rows(4, 3), unit_rows(4, 3, seed=1), [0, 1, 0])


def test_image_ids_of_wrong_length_raise():
    with pytest.raises(ValueError, match="image_ids must have one label per row \\(4\\), got 2"):
        metrics.retrieval_metrics(unit_rows(4, 3), unit_rows(4, 3, seed=1), image_ids=["a", "b"])


def test_unknown_options_raise():
    images, texts = unit_rows(4, 3), unit_rows(4, 3, seed=1)

    with pytest.raises(ValueError, match="method must be one of"):
        metrics.true_pair_angle(images, texts, method="median")
    with pytest.raises(ValueError, match="ties must be one of"):
        metrics.retrieval_metrics(images, texts, ties="random")
    with pytest.raises(ValueError, match="modality must be one of"):
        metrics.knn_accuracy(images, texts, [0, 1, 0, 1], modality="audio")
    with pytest.raises(ValueError, match="each value of ks must be at least 1, got 0"):
        metrics.retrieval_metrics(images, texts, ks=(0, 5))
    with pytest.raises(ValueError, match="lam must be a number in \\[0, 1\\]"):
        metrics.shift_along_gap(images, texts, 1.5)


def test_labels_from_dataset_column():
    corpus = datasets.Dataset.from_dict({"finding": ["normal", "mass", "normal", "mass"]})

    labels = check_labels(corpus["finding"], 4)

    assert labels.tolist() == ["normal", "mass", "normal", "mass"]


def test_labels_from_integer_tensor():
    labels = check_labels(torch.tensor([2, 0, 1]), 3)

    assert labels.dtype == np.int64
    assert labels.tolist() == [2, 0, 1]


def test_string_labels_raise_type_error():
    with pytest.raises(TypeError, match="one label per row, got str"):
        check_labels("abcd", 4)
