"""Published figures that the book quotes next to its own numbers, with their sources.

The figures are never results of this package: :func:`comparison_table`
puts them in columns labeled ``published: ...`` beside columns of this book's
benchmark results, and :data:`PUBLISHED` records where each figure comes
from. Rates and scores are fractions in [0, 1] (the publications give
percent), angles are in degrees. A figure written ``None`` is one the
available material does not give; a method missing from a study has no entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class PublishedStudy:
    """Figures of one publication's experiment.

    Attributes:
        label: the column header, starting with ``published:``.
        source: the publication and where the figures were read.
        setting: data and encoders of the experiment.
        values: method (loss preset name) -> quantity -> value, or None when not known.
        approximate: (method, quantity) pairs that the source gives as approximate.
    """

    label: str
    source: str
    setting: str
    values: Mapping[str, Mapping[str, float | None]]
    approximate: frozenset[tuple[str, str]] = frozenset()


MEDICAL = PublishedStudy(
    label="published: medical (ROCO)",
    source="E. Grassucci, G. Cicchetti, D. Comminiello, \"Closing the gap in multimodal medical representation "
           "alignment\", arXiv:2602.20046 (2026); figures as given in published summaries of the paper",
    setting="ROCO radiology image-caption pairs; EVA-CLIP ViT-G image tower, BERT-base text tower, 512-d space",
    values={
        "clip": {"modality_gap": 0.39, "true_pair_cosine": 0.20, "true_pair_angle": 80.0},
        # The summaries give the R@10 change without saying which retrieval direction.
        "clip_atp_cu": {"modality_gap": 0.12, "true_pair_cosine": 0.54, "true_pair_angle": None,
                        "R@10_change": 0.074},
    },
    approximate=frozenset({("clip", "true_pair_cosine"), ("clip", "true_pair_angle")}),
)

MSCOCO = PublishedStudy(
    label="published: MSCOCO",
    source="E. Grassucci, G. Cicchetti, E. Frasca, A. Uncini, D. Comminiello, \"Closing the Modality Gap "
           "Aligns Group-Wise Semantics\", ICLR 2026, arXiv:2601.18525; figures from the authors' project page",
    setting="MSCOCO image-caption pairs; open_clip RN50 trained from scratch",
    values={
        "clip": {"modality_gap": 0.47, "R@1": 0.746, "v_measure": 0.1298, "true_pair_cosine": 0.34},
        "clip_fixed_tau": {"modality_gap": 0.12, "R@1": 0.732, "v_measure": 0.1299, "true_pair_cosine": 0.63},
        "clip_atp_cu": {"modality_gap": 0.03, "R@1": 0.703, "v_measure": 0.2363, "true_pair_cosine": 0.77},
    },
)

PUBLISHED = (MEDICAL, MSCOCO)

METHOD_LABELS = {"clip": "CLIP, learned τ", "clip_fixed_tau": "CLIP, fixed τ", "clip_atp_cu": "CLIP + ATP + CU"}
QUANTITY_LABELS = {
    "modality_gap": "modality gap ↓",
    "true_pair_cosine": "true-pair cosine ↑",
    "true_pair_angle": "true-pair angle, degrees ↓",
    "R@1": "R@1 ↑",
    "R@10_change": "R@10 change from CLIP ↑",
    "v_measure": "V-measure ↑",
}


def book_values(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Return method -> quantity -> per-seed values of the quantities in :data:`QUANTITY_LABELS`.

    Args:
        rows: benchmark rows (``BenchmarkResult.rows``): ``method``, ``seed`` and
            the metrics of :func:`~medgap_utils.metrics.gap_summary`,
            :func:`~medgap_utils.metrics.retrieval_metrics` and
            :func:`~medgap_utils.metrics.clustering_scores`.

    ``R@1`` is the mean of the image-to-text and text-to-image R@1, because the
    publications do not say which direction they report. ``R@10_change`` pairs
    each seed's run with the ``clip`` run of the same seed.

    Raises:
        ValueError: a row lacks one of the metrics.
    """
    needed = ("modality_gap", "true_pair_cosine", "true_pair_angle", "v_measure",
              "image_to_text_R@1", "text_to_image_R@1", "image_to_text_R@10", "text_to_image_R@10")
    values: dict[str, dict[str, list[float]]] = {}
    recall_at_10: dict[tuple[str, int], float] = {}
    for row in rows:
        missing = [name for name in needed if name not in row]
        if missing:
            raise ValueError(f"rows: the row of {row.get('method')!r} seed {row.get('seed')} lacks {missing}; "
                             "pass rows of medgap_utils.bench.run_benchmark.")
        entry = values.setdefault(row["method"], {})
        for name in ("modality_gap", "true_pair_cosine", "true_pair_angle", "v_measure"):
            entry.setdefault(name, []).append(float(row[name]))
        entry.setdefault("R@1", []).append((row["image_to_text_R@1"] + row["text_to_image_R@1"]) / 2)
        recall_at_10[row["method"], row["seed"]] = (row["image_to_text_R@10"] + row["text_to_image_R@10"]) / 2
    for (method, seed), recall in recall_at_10.items():
        if method != "clip" and ("clip", seed) in recall_at_10:
            values[method].setdefault("R@10_change", []).append(recall - recall_at_10["clip", seed])
    return values


def _published_cell(study: PublishedStudy, method: str, quantity: str) -> str:
    if quantity not in study.values.get(method, {}):
        return ""
    value = study.values[method][quantity]
    if value is None:
        return "not known"
    prefix = ""
    if (method, quantity) in study.approximate:
        prefix = "≈"
    elif quantity.endswith("_change"):
        prefix = "+"
    return f"{prefix}{value:.1f}" if quantity == "true_pair_angle" else f"{prefix}{value:.4g}"


def _book_cell(values: Sequence[float] | None, quantity: str) -> str:
    if not values:
        return ""
    digits = 1 if quantity == "true_pair_angle" else 3
    sign = "+" if quantity.endswith("_change") else ""
    mean = round(float(np.mean(values)), digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    if len(values) == 1:
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} ± {float(np.std(values, ddof=1)):.{digits}f}"


def _check_book_labels(book: Mapping[str, Any]) -> None:
    for label in book:
        if label.lower().startswith("published"):
            raise ValueError(f"book: invalid column label {label!r}: it contains this book's numbers, so it must "
                             "not start with 'published'. Rename the column.")


def comparison_table(book: Mapping[str, Sequence[Mapping[str, Any]]],
                     methods: Sequence[str] = ("clip", "clip_fixed_tau", "clip_atp_cu")):
    """Return a table of the published figures beside this book's, one row per method and quantity.

    Args:
        book: column label -> benchmark rows (see :func:`book_values`); each
            label names this book and the setting of its runs.
        methods: loss presets to show, in order.

    Returns:
        A ``pandas.DataFrame`` of strings indexed by (method, quantity), with
        one column per :data:`PUBLISHED` study, then one per ``book`` entry
        (``mean ± std`` over seeds, or the value of a single seed). Empty cells
        mean the study or run has no such figure; ``not known`` means the
        available material does not give it.

    Raises:
        ValueError: a book column label starts with ``published``, or a row lacks a metric.
    """
    import pandas as pd

    _check_book_labels(book)
    measured = {label: book_values(rows) for label, rows in book.items()}
    records = []
    for method in methods:
        for quantity, quantity_label in QUANTITY_LABELS.items():
            record = {study.label: _published_cell(study, method, quantity) for study in PUBLISHED}
            for label, values in measured.items():
                record[label] = _book_cell(values.get(method, {}).get(quantity), quantity)
            if any(record.values()):
                records.append({"method": METHOD_LABELS.get(method, method), "quantity": quantity_label, **record})
    return pd.DataFrame.from_records(records).set_index(["method", "quantity"])


def sources_markdown() -> str:
    """Return a Markdown list of the published studies: column label, setting and source."""
    return "\n".join(f"- **{study.label}**: {study.setting}. Source: {study.source}." for study in PUBLISHED)


def comparison_figure(book: Mapping[str, Sequence[Mapping[str, Any]]],
                      quantities: Sequence[str] = ("modality_gap", "true_pair_cosine"),
                      methods: Sequence[str] = ("clip", "clip_atp_cu")):
    """Return a plotly bar chart of published and book values, one panel per quantity.

    Published figures are hatched bars without error bars. This book's bars
    show the mean over seeds with the sample standard deviation as error bars
    (none for a single seed). Arguments are those of :func:`comparison_table`.

    Raises:
        ValueError: as :func:`comparison_table`, or for a quantity outside :data:`QUANTITY_LABELS`.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    unknown = [quantity for quantity in quantities if quantity not in QUANTITY_LABELS]
    if unknown:
        raise ValueError(f"quantities: {unknown} not in {list(QUANTITY_LABELS)}.")
    _check_book_labels(book)
    measured = {label: book_values(rows) for label, rows in book.items()}
    labels = [METHOD_LABELS.get(method, method) for method in methods]
    figure = make_subplots(rows=1, cols=len(quantities), subplot_titles=[QUANTITY_LABELS[q] for q in quantities])
    colors = ("#9e9e9e", "#616161", "#1f77b4", "#ff7f0e", "#2ca02c")

    for column, quantity in enumerate(quantities, start=1):
        for index, study in enumerate(PUBLISHED):
            values = [study.values.get(method, {}).get(quantity) for method in methods]
            figure.add_trace(go.Bar(
                x=labels, y=values, name=study.label, legendgroup=study.label, showlegend=column == 1,
                marker={"color": colors[index], "pattern": {"shape": "/"}},
            ), row=1, col=column)
        for index, (label, values) in enumerate(measured.items(), start=len(PUBLISHED)):
            runs = [values.get(method, {}).get(quantity) or [] for method in methods]
            figure.add_trace(go.Bar(
                x=labels, y=[float(np.mean(run)) if run else None for run in runs],
                error_y={"type": "data", "array": [float(np.std(run, ddof=1)) if len(run) > 1 else 0.0 for run in runs]},
                name=label, legendgroup=label, showlegend=column == 1, marker={"color": colors[index % len(colors)]},
            ), row=1, col=column)

    figure.update_layout(barmode="group", height=420, legend={"orientation": "h", "y": -0.15},
                         title="Published figures (hatched) and this book's (solid)")
    return figure
