"""Corpus browsing figures and statistics."""

import datasets
import pytest

from medgap_utils.data import PHANTOM_FEATURES
from medgap_utils.data.browse import corpus_statistics, image_grid_figure, image_row_figure, label_counts_figure
from medgap_utils.data.corpus import generate_split


@pytest.fixture(scope="module")
def dataset():
    return datasets.Dataset.from_dict(generate_split(80, seed=0, split="train", image_size=32),
                                      features=PHANTOM_FEATURES)


def test_grid_has_dropdown_per_value(dataset):
    figure = image_grid_figure(dataset, by="modality", per_value=4, columns=2)
    buttons = figure.layout.updatemenus[0].buttons
    assert len(buttons) == len(set(dataset["modality"]))
    visible = [trace.visible for trace in figure.data]
    assert sum(visible) == 4
    for button in buttons:
        assert sum(button.args[0]["visible"]) <= 4


def test_grid_images_are_data_uris(dataset):
    figure = image_grid_figure(dataset, by="group", per_value=2)
    assert all(trace.source.startswith("data:image/png;base64,") for trace in figure.data)


def test_grid_unknown_column_raises(dataset):
    with pytest.raises(ValueError, match="not a column"):
        image_grid_figure(dataset, by="sex")


def test_row_figure_lengths_must_match(dataset):
    with pytest.raises(ValueError, match="same length"):
        image_row_figure(dataset[:2]["image"], ["one"])


def test_statistics_counts_match_dataset(dataset):
    stats = corpus_statistics(dataset)
    assert stats["rows"] == 80
    assert sum(stats["counts"]["group"].values()) == 80
    assert len(stats["caption_words"]) == 80
    assert stats["caption_words"].min() >= 2
    assert stats["vocabulary_size"] > 50


def test_label_counts_bars_sum_to_rows(dataset):
    figure = label_counts_figure(dataset)
    assert sum(sum(trace.y) for trace in figure.data) == 80
