"""Browsing a corpus: image grids with captions and corpus statistics, as plotly figures.

Images are embedded as PNG data URIs, so a grid of a hundred 64-pixel images
adds a few hundred kilobytes to a static page and needs no server.
"""

from __future__ import annotations

import base64
import collections
import io
import re
import textwrap
from collections.abc import Sequence

import datasets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from PIL import Image

from .images import to_rgb


def _data_uri(image: Image.Image, size: int) -> str:
    image = to_rgb(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _wrap(text: str, width: int = 34, lines: int = 3) -> str:
    wrapped = textwrap.wrap(text, width)
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "…"
    return "<br>".join(wrapped)


def _hover(text: str) -> str:
    # go.Image takes hover text only as a per-pixel array, so the caption goes into the template.
    return _wrap(text.replace("%", "%%"), 60, 8) + "<extra></extra>"


def image_grid_figure(
    dataset: datasets.Dataset,
    by: str = "group",
    per_value: int = 6,
    columns: int = 3,
    seed: int = 0,
    image_size: int = 64,
    title: str | None = None,
) -> go.Figure:
    """Return a grid of sample images with their captions, with a dropdown over the values of ``by``.

    For each value of the column ``by`` (e.g. ``group``, ``modality``,
    ``finding``), up to ``per_value`` rows are drawn at random with ``seed``.
    Captions appear under each image (shortened) and in full on hover.

    Raises:
        ValueError: if ``by`` is not a column or ``per_value``/``columns`` is not positive.
    """
    if by not in dataset.column_names:
        raise ValueError(f"by={by!r} is not a column; the dataset has {dataset.column_names}.")
    if per_value < 1 or columns < 1:
        raise ValueError(f"per_value and columns must be positive, got {per_value} and {columns}.")
    values = dataset[by]
    order = sorted(set(values), key=str)
    rng = np.random.default_rng(seed)
    rows_per_value = {value: [i for i, v in enumerate(values) if v == value] for value in order}
    picks = {value: sorted(rng.choice(rows, size=min(per_value, len(rows)), replace=False).tolist())
             for value, rows in rows_per_value.items()}

    grid_rows = int(np.ceil(per_value / columns))
    figure = make_subplots(rows=grid_rows, cols=columns, horizontal_spacing=0.02, vertical_spacing=0.12)
    annotations_per_value, visibility = {}, []
    for value_index, value in enumerate(order):
        annotations = []
        for slot, row in enumerate(picks[value]):
            item = dataset[row]
            grid_row, grid_col = slot // columns + 1, slot % columns + 1
            figure.add_trace(
                go.Image(source=_data_uri(item["image"], image_size), visible=value_index == 0,
                         hovertemplate=_hover(item["caption"]), name=str(value)),
                row=grid_row, col=grid_col,
            )
            visibility.append(value_index)
            axis = "" if slot == 0 else str(slot + 1)
            annotations.append(dict(text=_wrap(item["caption"]), xref=f"x{axis} domain", yref=f"y{axis} domain",
                                    x=0.5, y=-0.02, yanchor="top", showarrow=False, font=dict(size=9)))
        annotations_per_value[value] = annotations

    buttons = []
    for value_index, value in enumerate(order):
        buttons.append(dict(
            label=f"{value} ({len(rows_per_value[value])})", method="update",
            args=[{"visible": [index == value_index for index in visibility]},
                  {"annotations": annotations_per_value[value]}],
        ))
    figure.update_layout(
        title=title or f"Samples by {by}",
        annotations=annotations_per_value[order[0]],
        updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.12, yanchor="bottom")],
        height=260 * grid_rows + 120, margin=dict(t=110, b=40, l=10, r=10),
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def image_row_figure(images: Sequence[Image.Image], titles: Sequence[str], hovertexts: Sequence[str] | None = None,
                     image_size: int = 160, title: str | None = None) -> go.Figure:
    """Return one row of images with titles (e.g. real slices next to phantoms)."""
    if len(images) != len(titles):
        raise ValueError(f"images and titles must have the same length, got {len(images)} and {len(titles)}.")
    figure = make_subplots(rows=1, cols=len(images), subplot_titles=[_wrap(t, 28, 3) for t in titles],
                           horizontal_spacing=0.02)
    for index, image in enumerate(images):
        hover = _hover(hovertexts[index] if hovertexts is not None else titles[index])
        figure.add_trace(go.Image(source=_data_uri(image, image_size), hovertemplate=hover),
                         row=1, col=index + 1)
    figure.update_annotations(font_size=10)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(title=title, height=330, margin=dict(t=110, b=10, l=10, r=10))
    return figure


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")


def corpus_statistics(dataset: datasets.Dataset) -> dict:
    """Summarize a corpus split: label counts, caption lengths and vocabulary.

    Returns a dict with ``rows``; ``counts`` (column -> Counter) for each label
    column present among modality/anatomy/finding/group/side/location;
    ``caption_words`` (int array, words per caption); ``vocabulary_size``
    (distinct lower-cased words); ``unique_caption_fraction``; and
    ``top_words`` (the 20 most frequent words with counts).
    """
    captions = dataset["caption"]
    words = [_WORD.findall(caption.lower()) for caption in captions]
    vocabulary = collections.Counter(word for caption_words in words for word in caption_words)
    counts = {column: collections.Counter(dataset[column])
              for column in ("modality", "anatomy", "finding", "group", "side", "location")
              if column in dataset.column_names}
    return {
        "rows": len(dataset),
        "counts": counts,
        "caption_words": np.array([len(caption_words) for caption_words in words]),
        "vocabulary_size": len(vocabulary),
        "unique_caption_fraction": len(set(captions)) / max(len(captions), 1),
        "top_words": vocabulary.most_common(20),
    }


def label_counts_figure(dataset: datasets.Dataset, rows: str = "group", colors: str = "modality") -> go.Figure:
    """Return a stacked bar chart of row counts per value of ``rows``, split by ``colors``."""
    table = collections.Counter(zip(dataset[rows], dataset[colors]))
    row_values = sorted({row for row, _ in table}, key=str)
    figure = go.Figure()
    for color in sorted({color for _, color in table}, key=str):
        figure.add_trace(go.Bar(name=str(color), x=row_values, y=[table.get((row, color), 0) for row in row_values]))
    figure.update_layout(barmode="stack", title=f"Pairs per {rows}, by {colors}", xaxis_tickangle=-40,
                         yaxis_title="pairs", height=420)
    return figure
