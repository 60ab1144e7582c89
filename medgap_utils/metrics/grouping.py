"""Group-wise tasks on paired embeddings: clustering, probes, zero-shot labels.

Closing the modality gap barely moves instance-wise retrieval but changes
how images and captions group by meaning; these functions measure the
grouping. All scores are fractions (accuracy, F1, V-measure and NMI in
[0, 1], ARI in [-1, 1]), not percent.

Cross-validation keeps the image and the caption of one pair in the same
fold, so a query's own partner is never in the training set. Otherwise a
nearest-neighbor probe on the stacked embeddings could score by retrieving
the partner rather than by grouping.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    adjusted_rand_score,
    completeness_score,
    f1_score,
    homogeneity_score,
    normalized_mutual_info_score,
    v_measure_score,
)
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier

from ._validation import check_embeddings, check_labels, check_matrix, check_positive_int

logger = logging.getLogger(__name__)

PROBE_MODALITIES = ("joint", "image", "text")


def _class_count(labels: np.ndarray, name: str = "labels") -> int:
    classes = len(np.unique(labels))
    if classes < 2:
        raise ValueError(f"{name} must contain at least 2 distinct classes, got {classes}.")
    return classes


def _stacked(images: torch.Tensor, texts: torch.Tensor) -> np.ndarray:
    return torch.cat([images, texts]).cpu().numpy()


def clustering_scores(
    image_embeddings: Any,
    text_embeddings: Any,
    labels: Any,
    *,
    n_clusters: int | None = None,
    seed: int = 0,
    n_init: int = 10,
    normalize: bool = False,
) -> dict[str, float]:
    """Cluster the stacked embeddings with KMeans and score the clusters against labels.

    KMeans (scikit-learn, k-means++ initialization, ``n_init`` restarts,
    ``random_state=seed``) runs on the 2N rows ``[x; y]``; image row i and
    text row i both carry ``labels[i]``.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        labels: length-N semantic labels of the pairs (any hashable values),
            with at least 2 distinct classes.
        n_clusters: number of clusters; by default the number of distinct labels.
        seed: random state of KMeans.
        n_init: KMeans restarts; the run with the lowest inertia is kept.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        A dict of floats:

        - ``v_measure``, ``homogeneity``, ``completeness``, ``ari``
          (adjusted Rand index), ``nmi`` (normalized mutual information,
          arithmetic mean): scikit-learn's scores of the clusters against the labels.
        - ``modality_split_rate``: the fraction of pairs whose image and
          text land in different clusters, 0 when every pair shares a
          cluster, near 1 when clusters follow modality rather than meaning.
        - ``modality_homogeneity``: homogeneity of the clusters with respect
          to the modality (image or text), 1 when every cluster contains a
          single modality.

    Raises:
        ValueError: if labels has fewer than 2 classes, ``n_clusters`` is
            below 2 or above 2N, and see :func:`check_embeddings`.
    """
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    rows = images.shape[0]
    pair_labels = check_labels(labels, rows)
    classes = _class_count(pair_labels)
    n_clusters = classes if n_clusters is None else check_positive_int(n_clusters, "n_clusters", minimum=2)
    n_init = check_positive_int(n_init, "n_init")
    if n_clusters > 2 * rows:
        raise ValueError(
            f"n_clusters ({n_clusters}) cannot exceed the number of clustered rows, 2N = {2 * rows}; "
            "pass more pairs or fewer clusters."
        )

    kmeans = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    clusters = kmeans.fit_predict(_stacked(images, texts))
    stacked_labels = np.concatenate([pair_labels, pair_labels])
    modalities = np.repeat([0, 1], rows)

    return {
        "v_measure": float(v_measure_score(stacked_labels, clusters)),
        "homogeneity": float(homogeneity_score(stacked_labels, clusters)),
        "completeness": float(completeness_score(stacked_labels, clusters)),
        "ari": float(adjusted_rand_score(stacked_labels, clusters)),
        "nmi": float(normalized_mutual_info_score(stacked_labels, clusters)),
        "modality_split_rate": float(np.mean(clusters[:rows] != clusters[rows:])),
        "modality_homogeneity": float(homogeneity_score(modalities, clusters)),
    }


def _probe_samples(
    images: torch.Tensor, texts: torch.Tensor, modality: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return the probe's rows and the pair index of each row."""
    rows = images.shape[0]
    pair_index = np.arange(rows)
    if modality == "image":
        return images.cpu().numpy(), pair_index
    if modality == "text":
        return texts.cpu().numpy(), pair_index
    return _stacked(images, texts), np.concatenate([pair_index, pair_index])


def _cross_validated_accuracy(
    make_model: Callable[[], ClassifierMixin],
    features: np.ndarray,
    targets: np.ndarray,
    pair_index: np.ndarray,
    fold_splits: list[tuple[np.ndarray, np.ndarray]],
) -> float:
    """Fit one model per fold of pairs and return the mean test accuracy over folds."""
    accuracies = []
    for train_pairs, test_pairs in fold_splits:
        train_rows = np.isin(pair_index, train_pairs)
        test_rows = np.isin(pair_index, test_pairs)
        model = make_model().fit(features[train_rows], targets[train_rows])
        accuracies.append(float(np.mean(model.predict(features[test_rows]) == targets[test_rows])))
    return float(np.mean(accuracies))


def _stratified_pair_folds(pair_labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = len(pair_labels)
    if rows < folds:
        raise ValueError(f"Cross-validation with folds={folds} needs at least {folds} pairs, got {rows}.")
    smallest_class = int(np.unique(pair_labels, return_counts=True)[1].min())
    if smallest_class < folds:
        # Logged at INFO because small evaluation splits (the ci profile) hit
        # this routinely; scikit-learn's own UserWarning for it is silenced.
        logger.info(
            "The smallest class has %d pairs, fewer than folds=%d, so some test folds lack it.",
            smallest_class,
            folds,
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    codes = np.unique(pair_labels, return_inverse=True)[1]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros(rows), codes))


def _check_probe_arguments(modality: str, folds: int) -> int:
    if modality not in PROBE_MODALITIES:
        raise ValueError(f"modality must be one of {PROBE_MODALITIES}, got {modality!r}.")
    return check_positive_int(folds, "folds", minimum=2)


def knn_accuracy(
    image_embeddings: Any,
    text_embeddings: Any,
    labels: Any,
    *,
    k: int = 5,
    folds: int = 5,
    modality: str = "joint",
    seed: int = 0,
    normalize: bool = False,
) -> float:
    """Compute the cross-validated accuracy of a k-nearest-neighbor classifier of the labels.

    Pairs are split into ``folds`` stratified folds (scikit-learn
    ``StratifiedKFold``, shuffled with ``seed``); a pair's image and text
    always share a fold. Neighbors use the Euclidean distance, which ranks
    unit vectors as the cosine does. Each test row gets the majority label of
    its ``k`` nearest training rows.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        labels: length-N semantic labels of the pairs, at least 2 classes.
        k: neighbors per vote.
        folds: number of cross-validation folds, >= 2 and <= N.
        modality: ``"joint"`` classifies the 2N stacked rows ``[x; y]``
            (each pair's label on both rows); ``"image"`` or ``"text"`` uses
            one modality alone.
        seed: shuffles the folds.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        The mean test accuracy over folds, a fraction in [0, 1].

    Raises:
        ValueError: for an unknown ``modality``, fewer than 2 classes, N <
            ``folds``, a training fold with fewer than ``k`` rows, and see
            :func:`check_embeddings`.
    """
    folds = _check_probe_arguments(modality, folds)
    k = check_positive_int(k, "k")
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    pair_labels = check_labels(labels, images.shape[0])
    _class_count(pair_labels)

    features, pair_index = _probe_samples(images, texts, modality)
    splits = _stratified_pair_folds(pair_labels, folds, seed)
    smallest_train = min(np.isin(pair_index, train).sum() for train, _ in splits)
    if smallest_train < k:
        raise ValueError(
            f"k={k} exceeds the {smallest_train} rows of the smallest training fold; "
            "pass a smaller k, fewer folds or more pairs."
        )

    return _cross_validated_accuracy(
        lambda: KNeighborsClassifier(n_neighbors=k, algorithm="brute"),
        features,
        pair_labels[pair_index],
        pair_index,
        splits,
    )


def linear_probe_accuracy(
    image_embeddings: Any,
    text_embeddings: Any,
    labels: Any,
    *,
    folds: int = 5,
    modality: str = "joint",
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    normalize: bool = False,
) -> float:
    """Compute the cross-validated accuracy of a linear classifier of the labels.

    The classifier is scikit-learn's L2-regularized multinomial logistic
    regression (inverse strength ``C``, unpenalized intercept) on the raw
    embeddings. Without per-coordinate standardization the probe, like every
    other metric here, is unchanged by a rotation of the embedding space.
    Folds are built as in :func:`knn_accuracy`.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        labels: length-N semantic labels of the pairs, at least 2 classes.
        folds: number of cross-validation folds, >= 2 and <= N.
        modality: ``"joint"``, ``"image"`` or ``"text"``, as in :func:`knn_accuracy`.
        C: inverse regularization strength, > 0.
        max_iter: iteration limit of the solver (lbfgs).
        seed: shuffles the folds.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        The mean test accuracy over folds, a fraction in [0, 1].

    Raises:
        ValueError: for an unknown ``modality``, ``C`` <= 0, fewer than 2
            classes, N < ``folds``, and see :func:`check_embeddings`.
    """
    folds = _check_probe_arguments(modality, folds)
    if not C > 0:
        raise ValueError(f"C must be positive, got {C!r}.")
    max_iter = check_positive_int(max_iter, "max_iter")
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    pair_labels = check_labels(labels, images.shape[0])
    _class_count(pair_labels)

    features, pair_index = _probe_samples(images, texts, modality)
    return _cross_validated_accuracy(
        lambda: LogisticRegression(C=C, max_iter=max_iter),
        features,
        pair_labels[pair_index],
        pair_index,
        _stratified_pair_folds(pair_labels, folds, seed),
    )


def modality_separability(
    image_embeddings: Any,
    text_embeddings: Any,
    *,
    folds: int = 5,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    normalize: bool = False,
) -> float:
    """Compute how well a linear classifier separates image rows from text rows.

    The cross-validated accuracy of logistic regression (as in
    :func:`linear_probe_accuracy`) predicting the modality of each of the 2N
    stacked rows. Both rows of a pair share a fold, so every test fold is
    balanced. 0.5 means no linear direction separates the modalities; 1.0
    means a hyperplane splits them completely, which a large modality gap
    allows.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        folds: number of cross-validation folds, >= 2 and <= N.
        C: inverse regularization strength, > 0.
        max_iter: iteration limit of the solver (lbfgs).
        seed: shuffles the folds.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        The mean test accuracy over folds, a fraction in [0, 1].

    Raises:
        ValueError: for ``C`` <= 0, N < ``folds``, and see :func:`check_embeddings`.
    """
    folds = check_positive_int(folds, "folds", minimum=2)
    if not C > 0:
        raise ValueError(f"C must be positive, got {C!r}.")
    max_iter = check_positive_int(max_iter, "max_iter")
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    rows = images.shape[0]
    if rows < folds:
        raise ValueError(f"Cross-validation with folds={folds} needs at least {folds} pairs, got {rows}.")

    features, pair_index = _probe_samples(images, texts, "joint")
    modalities = np.repeat([0, 1], rows)
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(rows)))
    return _cross_validated_accuracy(
        lambda: LogisticRegression(C=C, max_iter=max_iter),
        features,
        modalities,
        pair_index,
        splits,
    )


def zero_shot_classification(
    image_embeddings: Any,
    prompt_embeddings: Any,
    labels: Any,
    *,
    normalize: bool = False,
) -> dict[str, float]:
    """Assign each image to the class whose prompt embedding is most similar.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        prompt_embeddings: (C, D) L2-normalized text embeddings of one prompt
            per class, row c for class c. To use several prompts per class,
            average their embeddings and L2-normalize the mean first.
        labels: length-N integer class indices in [0, C).
        normalize: L2-normalize the rows of both inputs first instead of raising.

    Returns:
        ``{"accuracy", "macro_f1"}``, fractions in [0, 1]. Macro-F1 averages
        the per-class F1 over the classes that occur in the labels or the
        predictions (scikit-learn's default), with F1 = 0 for a class that is
        never predicted. A tie between prompts goes to the lowest class index.

    Raises:
        TypeError: if labels are not integers.
        ValueError: if the dimensions differ, a label is outside [0, C), and
            see :func:`check_embeddings`.
    """
    images = check_matrix(image_embeddings, "image_embeddings", normalize=normalize)
    prompts = check_matrix(prompt_embeddings, "prompt_embeddings", normalize=normalize)
    if images.shape[1] != prompts.shape[1]:
        raise ValueError(
            f"image_embeddings and prompt_embeddings must have the same dimension D, "
            f"got {images.shape[1]} and {prompts.shape[1]}."
        )
    targets = check_labels(labels, images.shape[0])
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {targets.dtype}.")
    class_count = prompts.shape[0]
    if targets.size and (targets.min() < 0 or targets.max() >= class_count):
        raise ValueError(
            f"labels must be class indices in [0, {class_count}) (one prompt row per class), "
            f"got values from {targets.min()} to {targets.max()}."
        )

    predictions = (images @ prompts.to(images.device).T).argmax(dim=1).cpu().numpy()
    return {
        "accuracy": float(np.mean(predictions == targets)),
        "macro_f1": float(f1_score(targets, predictions, average="macro", zero_division=0)),
    }
