"""Within-class scatter of the stacked image and text embeddings, split into its parts.

Clustering and nearest-neighbor grouping see the 2N rows ``[x; y]`` as one
cloud. For a class c with n_c pairs, image centroid a_c, text centroid b_c,
class centroid m_c = (a_c + b_c) / 2 and class gap delta_c = a_c - b_c, every
image row of c sits on average delta_c / 2 away from m_c, and every text row
-delta_c / 2 away, so

    sum over the 2 n_c rows of c of ||z - m_c||^2
        = sum_i ||x_i - a_c||^2 + sum_i ||y_i - b_c||^2 + n_c ||delta_c||^2 / 2.

Averaged over all 2N rows, the within-class scatter is the per-modality
scatter plus sum_c (n_c / N) ||delta_c||^2 / 4. The class gaps average to the
modality gap vector delta (their weights n_c / N sum to 1), so that last term
splits again into ||delta||^2 / 4, the part that one constant gap vector
adds to every class, and the spread of the class gaps around delta.
Retrieval ranks, in contrast, do not change when one modality moves by a
constant vector (before re-normalization), because every score of a query
changes by the same amount.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_embeddings, check_labels


def within_class_scatter(
    image_embeddings: Any,
    text_embeddings: Any,
    labels: Any,
    *,
    normalize: bool = False,
) -> dict[str, float]:
    """Split the scatter of the stacked embeddings ``[x; y]`` into between-class, per-modality and gap parts.

    Image row i and text row i both carry ``labels[i]``. All values are mean
    squared Euclidean distances per stacked row (squared embedding units),
    computed in float64, and satisfy exactly

    - ``total = within + between``,
    - ``within = within_modality + class_gap``,
    - ``class_gap = global_gap + gap_spread``.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        labels: length-N semantic labels of the pairs (any hashable values).
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        A dict of floats:

        - ``total``: mean of ||z - m||^2 over the 2N rows, m the mean of all rows.
        - ``between``: sum_c (n_c / N) ||m_c - m||^2, the spread of the class
          centroids m_c = (a_c + b_c) / 2.
        - ``within``: mean of ||z - m_c||^2 over the 2N rows, each row
          measured from its class centroid over both modalities.
        - ``within_modality``: the same with each row measured from its own
          modality's class centroid (a_c for images, b_c for texts): the
          within-class scatter that remains with no gap between the
          modalities' class centroids.
        - ``class_gap``: sum_c (n_c / N) ||a_c - b_c||^2 / 4, what the class
          gaps add to the within-class scatter.
        - ``global_gap``: ||mean(x) - mean(y)||^2 / 4, the part a constant
          gap vector adds to every class (the squared modality gap over 4).
        - ``gap_spread``: sum_c (n_c / N) ||delta_c - delta||^2 / 4, the part
          from class gaps that differ from the modality gap vector delta.
        - ``gap_fraction``: ``class_gap / within`` (0 when ``within`` is 0).
        - ``within_fraction``: ``within / total`` (0 when ``total`` is 0), the
          scale-free share of the scatter that clustering by class must
          tolerate. Compare this, not ``within``, across transforms that
          re-normalize rows, because re-normalization rescales every part.

    Raises:
        TypeError, ValueError: see :func:`check_embeddings` and
            :func:`check_labels` (labels must have one value per pair).

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> y = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
        >>> round(within_class_scatter(x, y, ["a", "a"])["class_gap"], 3)
        0.5
    """
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    rows = images.shape[0]
    pair_labels = check_labels(labels, rows)
    images = images.cpu().numpy().astype(np.float64)
    texts = texts.cpu().numpy().astype(np.float64)

    codes = np.unique(pair_labels, return_inverse=True)[1].reshape(-1)
    counts = np.bincount(codes).astype(np.float64)
    weights = counts / rows
    image_centroids = np.zeros((len(counts), images.shape[1]))
    text_centroids = np.zeros_like(image_centroids)
    np.add.at(image_centroids, codes, images)
    np.add.at(text_centroids, codes, texts)
    image_centroids /= counts[:, None]
    text_centroids /= counts[:, None]
    class_centroids = (image_centroids + text_centroids) / 2

    overall_mean = (images.mean(axis=0) + texts.mean(axis=0)) / 2
    total = (_squared_distances(images, overall_mean).sum() + _squared_distances(texts, overall_mean).sum()) / (2 * rows)
    between = float(weights @ _squared_distances(class_centroids, overall_mean))
    within_modality = (_squared_distances(images, image_centroids[codes]).sum()
                       + _squared_distances(texts, text_centroids[codes]).sum()) / (2 * rows)

    class_gaps = image_centroids - text_centroids
    gap_vector = images.mean(axis=0) - texts.mean(axis=0)
    class_gap = float(weights @ _squared_distances(class_gaps, 0.0)) / 4
    global_gap = float(gap_vector @ gap_vector) / 4
    gap_spread = float(weights @ _squared_distances(class_gaps, gap_vector)) / 4
    within = (_squared_distances(images, class_centroids[codes]).sum()
              + _squared_distances(texts, class_centroids[codes]).sum()) / (2 * rows)

    return {
        "total": float(total),
        "between": between,
        "within": float(within),
        "within_modality": float(within_modality),
        "class_gap": class_gap,
        "global_gap": global_gap,
        "gap_spread": gap_spread,
        "gap_fraction": float(class_gap / within) if within > 0 else 0.0,
        "within_fraction": float(within / total) if total > 0 else 0.0,
    }


def _squared_distances(points: np.ndarray, centers: np.ndarray | float) -> np.ndarray:
    return ((points - centers) ** 2).sum(axis=1)
