"""Closed-form geometry of paired image and text embeddings.

Every function takes ``image_embeddings`` x and ``text_embeddings`` y of shape
(N, D), rows aligned (row i of each is a true pair) and L2-normalized, as a
torch tensor or numpy array, and returns Python floats. Angles are in degrees.
Tensors are processed on their own device; sums that lose precision to
cancellation are accumulated in float64.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._validation import check_embeddings, check_matrix

TRUE_PAIR_ANGLE_METHODS = ("mean_cosine", "mean_angle")

# Elements of one block of the pairwise-distance matrix in uniformity(): 2**24
# float32 values are 64 MiB, so N = 100k needs no N x N matrix.
_UNIFORMITY_BLOCK_ELEMENTS = 2**24


# Reductions accumulate in float64 through dtype= arguments, which avoids
# float64 copies of large (N, D) inputs.
def _mean(embeddings: torch.Tensor) -> torch.Tensor:
    return embeddings.sum(dim=0, dtype=torch.float64) / embeddings.shape[0]


def _modality_gap(images: torch.Tensor, texts: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(_mean(images) - _mean(texts)))


def _pair_cosines(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    return (images * texts).sum(dim=1, dtype=torch.float64)


def _angle_degrees(cosine: torch.Tensor) -> torch.Tensor:
    # Rounding can push a cosine of normalized vectors just past +-1.
    return torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0)))


def _intra_modality_cosine(embeddings: torch.Tensor) -> float:
    # The sum of all entries of E E^T is ||sum_i e_i||^2, so the off-diagonal
    # mean needs no N x N matrix.
    rows = embeddings.shape[0]
    total = float(embeddings.sum(dim=0, dtype=torch.float64).square().sum())
    diagonal = float(embeddings.square().sum(dtype=torch.float64))
    return (total - diagonal) / (rows * (rows - 1))


def _alignment(images: torch.Tensor, texts: torch.Tensor, alpha: float) -> float:
    distances = torch.linalg.vector_norm(images - texts, dim=1, dtype=torch.float64)
    return float(distances.pow(alpha).mean())


def _uniformity(embeddings: torch.Tensor, t: float) -> float:
    # log of the mean over ordered pairs i != j of exp(-t ||e_i - e_j||^2),
    # accumulated block by block as a log-sum-exp so that no N x N matrix
    # exists and no exponential underflows for large t.
    rows = embeddings.shape[0]
    squared_norms = embeddings.square().sum(dim=1)
    block_rows = max(1, _UNIFORMITY_BLOCK_ELEMENTS // rows)
    block_log_sums = []

    for start in range(0, rows, block_rows):
        stop = min(start + block_rows, rows)
        squared_distances = torch.addmm(
            squared_norms[start:stop, None] + squared_norms[None, :],
            embeddings[start:stop],
            embeddings.T,
            alpha=-2,
        )
        logits = squared_distances.clamp_(min=0).mul_(-t)

        local = torch.arange(stop - start, device=embeddings.device)
        logits[local, local + start] = -math.inf
        peak = logits.max()
        block_sum = logits.sub_(peak).exp_().sum(dtype=torch.float64)
        block_log_sums.append(peak.double() + block_sum.log())

    return float(torch.logsumexp(torch.stack(block_log_sums), dim=0)) - math.log(rows * (rows - 1))


def _pair_centroids(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    # NOTE: a pair with x_i = -y_i has a zero centroid, which stays zero here
    # (torch.nn.functional.normalize semantics) instead of raising.
    return torch.nn.functional.normalize((images + texts) / 2, dim=1)


def _gaussian_fit(embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the mean and the biased (1/N) covariance, in float64."""
    matrix = embeddings.double()
    mean = matrix.mean(dim=0)
    centered = matrix - mean
    return mean, centered.T @ centered / matrix.shape[0]


def _sqrt_eigenvalues(symmetric: torch.Tensor) -> torch.Tensor:
    # Covariances are positive semi-definite, so negative eigenvalues are rounding.
    return torch.linalg.eigvalsh(symmetric).clamp(min=0).sqrt()


def _w2_uniformity(images: torch.Tensor, texts: torch.Tensor) -> float:
    stacked = torch.cat([images, texts])
    mean, covariance = _gaussian_fit(stacked)
    dimension = stacked.shape[1]
    # The float64 D x D eigendecomposition runs on the CPU: D is small, and
    # float64 throughput is low on most consumer GPUs.
    mean, covariance = mean.cpu(), covariance.cpu()

    squared = (
        mean.square().sum()
        + 1.0
        + covariance.trace()
        - 2.0 / math.sqrt(dimension) * _sqrt_eigenvalues(covariance).sum()
    )
    return -math.sqrt(max(float(squared), 0.0))


def modality_gap(image_embeddings: Any, text_embeddings: Any, *, normalize: bool = False) -> float:
    """Compute the modality gap: the distance between the modality centroids.

    ``||mean_i x_i - mean_i y_i||_2``, in the units of the embedding space
    (0 when the centroids coincide, at most 2 for unit vectors).

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 1.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        normalize: L2-normalize the rows first instead of raising.

    Raises:
        TypeError, ValueError: see :func:`check_embeddings`.

    Example:
        >>> import torch
        >>> modality_gap(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
        1.4142135623730951
    """
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    return _modality_gap(images, texts)


def true_pair_cosine(image_embeddings: Any, text_embeddings: Any, *, normalize: bool = False) -> float:
    """Compute the mean cosine similarity of true pairs, ``mean_i <x_i, y_i>``.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 1.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        A float in [-1, 1].

    Raises:
        TypeError, ValueError: see :func:`check_embeddings`.
    """
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    return float(_pair_cosines(images, texts).mean())


def true_pair_angle(
    image_embeddings: Any,
    text_embeddings: Any,
    *,
    method: str = "mean_cosine",
    normalize: bool = False,
) -> float:
    """Compute the angle between true pairs, in degrees.

    Two summaries of the per-pair angles exist, and they differ whenever the
    per-pair cosines vary:

    - ``"mean_cosine"`` (default, the definition in the public code of
      Grassucci et al., github.com/ispamm/ModGap): ``degrees(arccos(mean_i <x_i, y_i>))``.
    - ``"mean_angle"``: ``mean_i degrees(arccos(<x_i, y_i>))``.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 1.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        method: ``"mean_cosine"`` or ``"mean_angle"``.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        An angle in [0, 180] degrees.

    Raises:
        ValueError: if ``method`` is not one of ``TRUE_PAIR_ANGLE_METHODS``,
            and see :func:`check_embeddings`.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> round(true_pair_angle(x, y), 6), round(true_pair_angle(x, y, method="mean_angle"), 6)
        (60.0, 45.0)
    """
    if method not in TRUE_PAIR_ANGLE_METHODS:
        raise ValueError(f"method must be one of {TRUE_PAIR_ANGLE_METHODS}, got {method!r}.")
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)

    cosines = _pair_cosines(images, texts)
    if method == "mean_cosine":
        return float(_angle_degrees(cosines.mean()))
    return float(_angle_degrees(cosines).mean())


def intra_modality_cosine(embeddings: Any, *, normalize: bool = False) -> float:
    """Compute the mean cosine between different rows of one modality (the cone effect).

    The mean of the off-diagonal entries of ``E E^T``: near 1 when the
    modality occupies a narrow cone, near 0 for directions spread over the
    sphere. Computed in O(N D) time, without the N x N matrix.

    Args:
        embeddings: (N, D) L2-normalized embeddings of one modality, N >= 2.
        normalize: L2-normalize the rows first instead of raising.

    Raises:
        TypeError, ValueError: as :func:`check_embeddings`, and for N < 2.
    """
    matrix = check_matrix(
        embeddings, "embeddings", normalize=normalize, min_rows=2, requirement="a cosine needs two different rows"
    )
    return _intra_modality_cosine(matrix)


def alignment(
    image_embeddings: Any, text_embeddings: Any, *, alpha: float = 2.0, normalize: bool = False
) -> float:
    """Compute the alignment of Wang & Isola (2020), ``mean_i ||x_i - y_i||^alpha``.

    Lower is better. For unit vectors and ``alpha=2`` it equals
    ``2 - 2 * true_pair_cosine``.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 1.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        alpha: exponent of the distance, > 0.
        normalize: L2-normalize the rows first instead of raising.

    Raises:
        ValueError: if ``alpha`` is not positive, and see :func:`check_embeddings`.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}.")
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    return _alignment(images, texts, alpha)


def uniformity(embeddings: Any, t: float = 2.0, *, normalize: bool = False) -> float:
    """Compute the uniformity of Wang & Isola (2020) of one set of embeddings.

    ``log mean_{i != j} exp(-t ||e_i - e_j||^2)``. Lower (more negative) is
    more uniform. The value is 0 when all rows coincide and approaches -4 for
    ``t=2`` as points spread uniformly over a high-dimensional sphere, where
    ``||e_i - e_j||^2`` concentrates at 2. Computed in blocks, so large N
    never allocates an N x N matrix.

    Args:
        embeddings: (N, D) L2-normalized embeddings, N >= 2.
        t: the kernel scale, > 0.
        normalize: L2-normalize the rows first instead of raising.

    Raises:
        ValueError: if ``t`` is not positive, and as :func:`check_embeddings`,
            and for N < 2.
    """
    if not t > 0:
        raise ValueError(f"t must be positive, got {t!r}.")
    matrix = check_matrix(
        embeddings, "embeddings", normalize=normalize, min_rows=2, requirement="uniformity compares pairs of rows"
    )
    return _uniformity(matrix, t)


def centroid_uniformity(
    image_embeddings: Any, text_embeddings: Any, t: float = 2.0, *, normalize: bool = False
) -> float:
    """Compute the uniformity of the re-normalized per-pair centroids.

    The centroid of pair i is ``(x_i + y_i) / 2`` scaled to unit norm (a pair
    with ``x_i = -y_i`` keeps a zero centroid); the result is
    :func:`uniformity` of these N centroids, the quantity the
    Centroid-Uniformity loss minimizes.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 2.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        t: the kernel scale, > 0.
        normalize: L2-normalize the rows first instead of raising.

    Raises:
        ValueError: if ``t`` is not positive, and as :func:`check_embeddings`,
            and for N < 2.
    """
    if not t > 0:
        raise ValueError(f"t must be positive, got {t!r}.")
    images, texts = check_embeddings(
        image_embeddings,
        text_embeddings,
        normalize=normalize,
        min_rows=2,
        requirement="uniformity compares pairs of rows",
    )
    return _uniformity(_pair_centroids(images, texts), t)


def w2_uniformity(image_embeddings: Any, text_embeddings: Any, *, normalize: bool = False) -> float:
    """Compute the Wasserstein-2 uniformity of the stacked embeddings ``[x; y]``.

    With ``(mu, Sigma)`` the mean and biased (1/2N) covariance of the 2N
    stacked rows, the value is
    ``-sqrt(||mu||^2 + 1 + tr Sigma - (2 / sqrt(D)) tr Sigma^(1/2))``,
    minus the W2 distance between the Gaussian fit and N(0, I/D), which
    approximates the uniform distribution on the unit sphere. Higher (closer
    to 0) is more uniform. This is the uniformity reported in the public code
    of Grassucci et al. (github.com/ispamm/ModGap, ``metrics.uniformity``).

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 1.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        normalize: L2-normalize the rows first instead of raising.

    Raises:
        TypeError, ValueError: see :func:`check_embeddings`.
    """
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    return _w2_uniformity(images, texts)


def gap_decomposition(image_embeddings: Any, text_embeddings: Any, *, normalize: bool = False) -> dict[str, float]:
    """Split the difference between the modalities into a centroid part and a distribution part.

    Each modality is summarized by its Gaussian fit (mean and biased
    covariance). The squared Wasserstein-2 distance between the two fits
    splits exactly into

    - ``centroid``: ``||mu_x - mu_y||``, the :func:`modality_gap`, and
    - ``distribution``: the Bures distance between the covariances,
      ``sqrt(tr S_x + tr S_y - 2 tr (S_x^(1/2) S_y S_x^(1/2))^(1/2))``, which
      is what still separates the modalities after each one is centered on
      its own mean (0 when the centered clouds have the same shape),

    so that ``total**2 == centroid**2 + distribution**2``. The pairing of
    rows plays no role here; :func:`alignment` measures the per-pair part.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 1.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        ``{"centroid", "distribution", "total", "centroid_fraction"}``, where
        ``centroid_fraction = centroid**2 / total**2`` (0 when total is 0).

    Raises:
        TypeError, ValueError: see :func:`check_embeddings`.
    """
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    image_mean, image_covariance = _gaussian_fit(images)
    text_mean, text_covariance = _gaussian_fit(texts)

    # The float64 D x D eigendecomposition runs on the CPU: D is small, and
    # float64 throughput is low on most consumer GPUs.
    image_covariance = image_covariance.cpu()
    text_covariance = text_covariance.cpu()
    eigenvalues, eigenvectors = torch.linalg.eigh(image_covariance)
    image_root = eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
    cross_term = image_root @ text_covariance @ image_root
    cross_term = (cross_term + cross_term.T) / 2
    bures_squared = image_covariance.trace() + text_covariance.trace() - 2 * _sqrt_eigenvalues(cross_term).sum()

    centroid = float(torch.linalg.vector_norm(image_mean - text_mean))
    distribution = math.sqrt(max(float(bures_squared), 0.0))
    total_squared = centroid**2 + distribution**2
    return {
        "centroid": centroid,
        "distribution": distribution,
        "total": math.sqrt(total_squared),
        "centroid_fraction": centroid**2 / total_squared if total_squared > 0 else 0.0,
    }


def gap_summary(image_embeddings: Any, text_embeddings: Any, *, normalize: bool = False) -> dict[str, float]:
    """Compute the cheap geometry numbers in one pass, for logging during training.

    Inputs are validated once. The cost is O(N^2 D) for the uniformities plus
    one D x D eigendecomposition.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 2.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        A dict of floats:

        - ``modality_gap``: :func:`modality_gap`.
        - ``true_pair_cosine``: :func:`true_pair_cosine`.
        - ``true_pair_angle``: degrees, arccos of the mean cosine.
        - ``true_pair_angle_mean``: degrees, mean of the per-pair angles.
        - ``image_cone_cosine``, ``text_cone_cosine``: :func:`intra_modality_cosine`
          of each modality.
        - ``alignment``: :func:`alignment` with ``alpha=2``.
        - ``image_uniformity``, ``text_uniformity``: :func:`uniformity` (t=2)
          of each modality.
        - ``uniformity``: :func:`uniformity` (t=2) of the 2N stacked rows ``[x; y]``.
        - ``centroid_uniformity``: :func:`centroid_uniformity` (t=2).
        - ``w2_uniformity``: :func:`w2_uniformity`.

    Raises:
        TypeError, ValueError: as :func:`check_embeddings`, and for N < 2.
    """
    images, texts = check_embeddings(
        image_embeddings,
        text_embeddings,
        normalize=normalize,
        min_rows=2,
        requirement="cone cosines and uniformities compare pairs of rows",
    )
    cosines = _pair_cosines(images, texts)
    return {
        "modality_gap": _modality_gap(images, texts),
        "true_pair_cosine": float(cosines.mean()),
        "true_pair_angle": float(_angle_degrees(cosines.mean())),
        "true_pair_angle_mean": float(_angle_degrees(cosines).mean()),
        "image_cone_cosine": _intra_modality_cosine(images),
        "text_cone_cosine": _intra_modality_cosine(texts),
        "alignment": _alignment(images, texts, 2.0),
        "image_uniformity": _uniformity(images, 2.0),
        "text_uniformity": _uniformity(texts, 2.0),
        "uniformity": _uniformity(torch.cat([images, texts]), 2.0),
        "centroid_uniformity": _uniformity(_pair_centroids(images, texts), 2.0),
        "w2_uniformity": _w2_uniformity(images, texts),
    }
