"""Published figures stand in labeled columns beside this book's numbers."""

import pytest

from medgap_utils.reference import (
    MEDICAL,
    MSCOCO,
    book_values,
    comparison_figure,
    comparison_table,
    sources_markdown,
)


def _row(method, seed, gap, recall_at_10=0.5):
    return {"method": method, "seed": seed, "modality_gap": gap, "true_pair_cosine": 0.5, "true_pair_angle": 60.0,
            "v_measure": 0.3, "image_to_text_R@1": 0.2, "text_to_image_R@1": 0.4,
            "image_to_text_R@10": recall_at_10, "text_to_image_R@10": recall_at_10}


ROWS = [_row("clip", 0, 0.6, 0.50), _row("clip", 1, 0.8, 0.60),
        _row("clip_atp_cu", 0, 0.1, 0.55), _row("clip_atp_cu", 1, 0.3, 0.58)]


def test_book_values_average_directions_and_pair_seeds():
    values = book_values(ROWS)
    assert values["clip"]["R@1"] == pytest.approx([0.3, 0.3])
    assert values["clip_atp_cu"]["R@10_change"] == pytest.approx([0.05, -0.02])
    assert "R@10_change" not in values["clip"]


def test_book_values_missing_metric_raises():
    with pytest.raises(ValueError, match="lacks"):
        book_values([{"method": "clip", "seed": 0, "modality_gap": 0.5}])


def test_table_quotes_published_and_book_columns():
    table = comparison_table({"this book: heads-only": ROWS}, methods=("clip", "clip_atp_cu"))
    assert list(table.columns) == [MEDICAL.label, MSCOCO.label, "this book: heads-only"]
    gap_clip = table.loc[("CLIP, learned τ", "modality gap ↓")]
    assert gap_clip[MEDICAL.label] == "0.39"
    assert gap_clip[MSCOCO.label] == "0.47"
    assert gap_clip["this book: heads-only"] == "0.700 ± 0.141"
    closed = table.loc[("CLIP + ATP + CU", "true-pair angle, degrees ↓")]
    assert closed[MEDICAL.label] == "not known"
    assert table.loc[("CLIP, learned τ", "true-pair cosine ↑")][MEDICAL.label] == "≈0.2"
    assert table.loc[("CLIP + ATP + CU", "R@10 change from CLIP ↑")][MEDICAL.label] == "+0.074"
    assert table.loc[("CLIP + ATP + CU", "V-measure ↑")][MSCOCO.label] == "0.2363"


def test_single_seed_has_no_spread():
    table = comparison_table({"this book": ROWS[:1]}, methods=("clip",))
    assert table.loc[("CLIP, learned τ", "modality gap ↓")]["this book"] == "0.600"


def test_book_column_cannot_claim_published():
    with pytest.raises(ValueError, match="must not start with 'published'"):
        comparison_table({"published: mine": ROWS})


def test_sources_name_both_studies():
    text = sources_markdown()
    assert "arXiv:2602.20046" in text
    assert "arXiv:2601.18525" in text


def test_figure_has_published_and_book_bars():
    figure = comparison_figure({"this book": ROWS})
    names = [trace.name for trace in figure.data]
    assert names == [MEDICAL.label, MSCOCO.label, "this book"] * 2
    book_gap = figure.data[2]
    assert list(book_gap.y) == pytest.approx([0.7, 0.2])
    assert list(book_gap.error_y.array) == pytest.approx([0.1414214, 0.1414214])
    assert list(figure.data[0].y) == [0.39, 0.12]


def test_figure_unknown_quantity_raises():
    with pytest.raises(ValueError, match="quantities"):
        comparison_figure({"this book": ROWS}, quantities=("recall",))


def test_zero_change_has_no_minus_sign():
    rows = [_row("clip", 0, 0.5, 0.5), _row("clip_atp_cu", 0, 0.1, 0.5 - 1e-6)]
    table = comparison_table({"this book": rows}, methods=("clip_atp_cu",))
    assert table.loc[("CLIP + ATP + CU", "R@10 change from CLIP ↑")]["this book"] == "+0.000"
