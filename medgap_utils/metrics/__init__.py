"""Metrics of paired image and text embeddings: gap geometry, retrieval, grouping.

Every metric takes embeddings, not models: ``image_embeddings`` and
``text_embeddings`` of shape (N, D) as torch tensors or numpy arrays, rows
aligned (row i of each is a true pair) and L2-normalized. Inputs are
validated once by :func:`check_embeddings`, which raises on mismatched rows or
dimensions, NaN or infinity, and rows whose norm is not 1; pass
``normalize=True`` to any metric to normalize instead.

Conventions, applied everywhere in this package:

- Angles are in degrees.
- Rates and scores (Recall@K, MRR, accuracy, F1, V-measure, NMI,
  separability) are fractions in [0, 1], never percent; ARI lies in [-1, 1].
- Ranks are 1-based.
- Results are Python floats, or dicts of floats.

Modules: :mod:`.geometry` (gap, angles, cone, uniformity),
:mod:`.retrieval` (exact chunked ranks and recall), :mod:`.grouping`
(clustering, probes, zero-shot, modality separability),
:mod:`.posthoc` (closing the gap after training) and :mod:`.scatter`
(within-class scatter of the stacked embeddings, split into a per-modality
part and a gap part).
"""

from ._validation import NORM_TOLERANCE, check_embeddings
from .captions import caption_metrics, clinical_correctness, parse_caption_labels, tokenize_caption
from .geometry import (
    alignment,
    centroid_uniformity,
    gap_decomposition,
    gap_summary,
    intra_modality_cosine,
    modality_gap,
    true_pair_angle,
    true_pair_cosine,
    uniformity,
    w2_uniformity,
)
from .grouping import (
    clustering_scores,
    knn_accuracy,
    linear_probe_accuracy,
    modality_separability,
    zero_shot_classification,
)
from .posthoc import center_modalities, shift_along_gap
from .retrieval import retrieval_metrics, retrieval_ranks
from .scatter import within_class_scatter

__all__ = [
    "NORM_TOLERANCE",
    "alignment",
    "center_modalities",
    "centroid_uniformity",
    "check_embeddings",
    "clustering_scores",
    "gap_decomposition",
    "gap_summary",
    "intra_modality_cosine",
    "knn_accuracy",
    "linear_probe_accuracy",
    "modality_gap",
    "modality_separability",
    "retrieval_metrics",
    "retrieval_ranks",
    "shift_along_gap",
    "true_pair_angle",
    "true_pair_cosine",
    "uniformity",
    "w2_uniformity",
    "within_class_scatter",
    "zero_shot_classification",
]
