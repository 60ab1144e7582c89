"""2-D and 3-D projections of embeddings (PCA, t-SNE, UMAP), cached on disk.

Image and text embeddings are always projected together: the projection is
fitted once on the stacked rows, so both modalities land in the same
coordinates and the gap between them stays visible. t-SNE and UMAP results
are cached under ``cache_dir("projections")``, keyed by a SHA-256 hash of the
embedding bytes and the projection settings, because they take seconds to
minutes and the book draws the same embeddings in several figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np

from medgap_utils.config import cache_dir, config_key
from medgap_utils.io import atomic_path

logger = logging.getLogger(__name__)

METHODS = ("pca", "tsne", "umap")
METHOD_TITLES = {"pca": "PC", "tsne": "t-SNE", "umap": "UMAP"}
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


@dataclasses.dataclass(frozen=True)
class Projection:
    """Projected coordinates of a stack of embeddings.

    Attributes:
        coordinates: float32 array (N, n_components).
        method: ``"pca"``, ``"tsne"`` or ``"umap"``.
        explained_variance: for PCA, the fraction (0 to 1) of the total
            variance each component explains; ``None`` otherwise.
    """

    coordinates: np.ndarray
    method: str
    explained_variance: tuple[float, ...] | None = None

    def axis_titles(self) -> list[str]:
        """Axis titles with units: PCA in embedding units (cosine space), others arbitrary."""
        name = METHOD_TITLES[self.method]
        if self.explained_variance is not None:
            return [
                f"{name} {index + 1} ({share * 100:.1f}% of variance)"
                for index, share in enumerate(self.explained_variance)
            ]
        return [f"{name} {index + 1} (arbitrary units)" for index in range(self.coordinates.shape[1])]


def embedding_hash(embeddings: np.ndarray) -> str:
    """Return the SHA-256 hex digest of a float32 C-ordered copy of ``embeddings`` and its shape."""
    array = np.ascontiguousarray(embeddings, dtype=np.float32)
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def project(
    embeddings: np.ndarray,
    method: str = "pca",
    n_components: int = 2,
    seed: int = 0,
    use_cache: bool = True,
) -> Projection:
    """Project the rows of ``embeddings`` (N, D) to ``n_components`` dimensions.

    PCA is centered, unwhitened and deterministic. t-SNE uses scikit-learn's
    Barnes-Hut solver with PCA initialization and a perplexity
    of ``min(30, (N - 1) / 3)``. UMAP uses umap-learn with 15 neighbors and
    ``random_state=seed`` (which makes it single-threaded and reproducible).
    Same inputs and seed give the same coordinates. t-SNE and UMAP results are
    read from and written to ``cache_dir("projections")`` unless
    ``use_cache`` is false.

    Raises:
        ValueError: if ``method`` is unknown, ``n_components`` is not 2 or 3,
            or there are fewer than ``n_components + 2`` rows.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components!r}.")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] < n_components + 2:
        raise ValueError(
            f"embeddings must have shape (N, D) with N >= {n_components + 2} to project, got {embeddings.shape}."
        )

    if method == "pca":
        return _pca(embeddings, n_components)

    key = config_key({
        "embeddings": embedding_hash(embeddings),
        "method": method,
        "n_components": n_components,
        "seed": seed,
    })
    path = cache_dir("projections") / f"{method}-{key}.npy"
    if use_cache and path.exists():
        logger.info("Loading the cached %s projection %s", method, path.name)
        return Projection(np.load(path), method)

    logger.info("Fitting %s on %d rows (cache key %s)", method, len(embeddings), key)
    coordinates = _tsne(embeddings, n_components, seed) if method == "tsne" else _umap(embeddings, n_components, seed)
    coordinates = coordinates.astype(np.float32)
    if use_cache:
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, coordinates)
    return Projection(coordinates, method)


def _pca(embeddings: np.ndarray, n_components: int) -> Projection:
    from sklearn.decomposition import PCA

    n_components_fitted = min(n_components, embeddings.shape[1])
    pca = PCA(n_components=n_components_fitted, svd_solver="full")
    coordinates = pca.fit_transform(embeddings.astype(np.float64))
    # Fewer input dimensions than requested components: pad with zeros so
    # every caller gets the shape it asked for.
    if n_components_fitted < n_components:
        coordinates = np.pad(coordinates, ((0, 0), (0, n_components - n_components_fitted)))
    variance = list(pca.explained_variance_ratio_) + [0.0] * (n_components - n_components_fitted)
    # The sign of a principal axis is arbitrary; fixing it makes figures of
    # nearly equal embeddings look alike.
    signs = np.sign(coordinates[np.argmax(np.abs(coordinates), axis=0), range(n_components)])
    coordinates = coordinates * np.where(signs == 0, 1.0, signs)
    return Projection(coordinates.astype(np.float32), "pca", tuple(float(share) for share in variance))


def _tsne(embeddings: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(embeddings) - 1) / 3))
    tsne = TSNE(
        n_components=n_components,
        perplexity=perplexity,
        init="pca",
        random_state=seed,
    )
    return tsne.fit_transform(embeddings)


def _umap(embeddings: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(
        n_components=n_components,
        n_neighbors=min(15, len(embeddings) - 1),
        min_dist=0.1,
        random_state=seed,
        n_jobs=1,
    )
    return reducer.fit_transform(embeddings)
