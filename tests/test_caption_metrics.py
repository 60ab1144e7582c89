"""Caption metrics: overlap scores against pycocoevalcap and hand computation, clinical correctness."""

from __future__ import annotations

import logging
import math

import datasets
import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from medgap_utils.data import PHANTOM_VOCABULARY, parse_caption
from medgap_utils.data.captions import make_caption
from medgap_utils.data.labels import sample_labels
from medgap_utils.metrics.captions import (
    UNPARSED_LABEL,
    CaptionLabelParser,
    caption_metrics,
    clinical_correctness,
    meteor_available,
    meteor_scorer,
    parse_caption_labels,
    tokenize_caption,
)

# A small vocabulary in the format of PHANTOM_VOCABULARY.
VOCABULARY = {
    "modality": {
        "CT": ["CT", "computed tomography", "NCCT"],
        "MRI": ["MRI", "MR", "T2-weighted"],
        "radiograph": ["radiograph", "X-ray", "CXR"],
    },
    "anatomy": {"chest": ["chest", "thorax", "CXR", "lung"], "head": ["head", "brain"]},
    "finding": {
        "normal": ["normal", "unremarkable", "no acute abnormality"],
        "nodule": ["nodule", "pulmonary nodule"],
        "pleural effusion": ["pleural effusion", "pleural fluid"],
        "pneumothorax": ["pneumothorax", "PTX"],
    },
    "side": {"right": ["right", "right-sided"], "left": ["left", "left-sided"], "bilateral": ["bilateral"]},
    "location": {"right lobe": ["right hepatic lobe"], "apical": ["apex", "apical"]},
}


# ---------------------------------------------------------------------------
# Tokenizer


def test_tokenizer_lowercases_and_drops_punctuation():
    assert tokenize_caption("Axial CT: 12.5 mm nodule (arrow), left X-ray.") == [
        "axial", "ct", "12.5", "mm", "nodule", "arrow", "left", "x-ray",
    ]


def test_tokenizer_keeps_punctuation_on_request():
    assert tokenize_caption("Chest CT: nodule.", keep_punctuation=True) == ["chest", "ct", ":", "nodule", "."]


def test_tokenizer_keeps_joined_words():
    assert tokenize_caption("T2-weighted MRI of Morison's pouch") == ["t2-weighted", "mri", "of", "morison's", "pouch"]


def test_tokenizer_empty_caption():
    assert tokenize_caption("") == []
    assert tokenize_caption(" .,; ") == []


def test_tokenizer_rejects_non_string():
    with pytest.raises(TypeError, match="text must be a str"):
        tokenize_caption(None)


# ---------------------------------------------------------------------------
# Overlap metrics


def test_bleu_hand_computed():
    # Clipped n-gram precisions 5/6, 3/5, 1/4, 0/3; equal lengths, so no brevity penalty.
    scores = caption_metrics(["the cat sat on the mat"], ["the cat is on the mat"], meteor=False)
    assert scores["BLEU-1"] == pytest.approx(5 / 6)
    assert scores["BLEU-2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert scores["BLEU-3"] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3))
    assert scores["BLEU-4"] < 1e-3


def test_bleu_brevity_penalty():
    # Precisions are 1; the brevity penalty is exp(1 - 6 / 2).
    scores = caption_metrics(["The cat."], ["the cat sat on the mat"], meteor=False)
    assert scores["BLEU-1"] == pytest.approx(math.exp(-2))
    assert scores["BLEU-2"] == pytest.approx(math.exp(-2))


def test_rouge_l_hand_computed():
    # LCS "the cat" = 2; P = 2/3, R = 2/5, beta = 1.2.
    precision, recall, beta = 2 / 3, 2 / 5, 1.2
    expected = (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
    scores = caption_metrics(["the cat sat"], ["the cat on the mat"], meteor=False)
    assert scores["ROUGE-L"] == pytest.approx(expected)


def test_identical_captions_score_one():
    captions = ["chest ct with a left nodule", "brain mri, normal", "right pleural effusion on x-ray"]
    scores = caption_metrics(captions, captions, meteor=False)
    for name in ("BLEU-1", "BLEU-2", "ROUGE-L"):
        assert scores[name] == pytest.approx(1.0), name


def test_scores_match_pycocoevalcap():
    predictions = ["Chest CT: a 12 mm nodule in the left lung.", "Normal brain MRI.", "Right pleural effusion (arrow)."]
    references = [
        ["Axial CT of the chest showing a 12 mm nodule in the left lung.", "Left lung nodule on chest CT."],
        ["Brain MRI within normal limits."],
        ["Chest X-ray with a right pleural effusion (arrow).", "Right-sided pleural effusion on CXR."],
    ]
    gts = {i: [" ".join(tokenize_caption(ref)) for ref in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(tokenize_caption(prediction))] for i, prediction in enumerate(predictions)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)

    scores = caption_metrics(predictions, references, meteor=False)

    for n in range(4):
        assert scores[f"BLEU-{n + 1}"] == pytest.approx(bleu[n])
    assert scores["ROUGE-L"] == pytest.approx(rouge)
    assert scores["CIDEr"] == pytest.approx(cider)
    assert scores["CIDEr"] > 0
    assert scores["captions scored"] == 3


def test_cider_of_one_caption_is_zero():
    # CIDEr's document frequencies come from the evaluated set: with one
    # reference set every n-gram has IDF log(1/1) = 0.
    scores = caption_metrics(["chest ct nodule"], ["chest ct nodule"], meteor=False)
    assert scores["CIDEr"] == 0.0


def test_empty_prediction_scores_zero():
    scores = caption_metrics(["", "brain mri"], ["chest ct with a nodule", "brain mri"], meteor=False)
    single = caption_metrics([""], ["chest ct with a nodule"], meteor=False)
    assert single["BLEU-1"] == 0.0
    assert single["ROUGE-L"] == 0.0
    assert single["CIDEr"] == 0.0
    assert scores["ROUGE-L"] == pytest.approx(0.5)
    assert scores["captions scored"] == 2


def test_punctuation_only_prediction_is_empty():
    scores = caption_metrics([" . "], ["chest ct"], meteor=False)
    assert scores["BLEU-1"] == 0.0


def test_empty_reference_is_left_out(caplog):
    with caplog.at_level(logging.WARNING):
        mixed = caption_metrics(["brain mri", "chest ct"], ["brain mri", ""], meteor=False)
    alone = caption_metrics(["brain mri"], ["brain mri"], meteor=False)
    assert mixed["captions scored"] == 1
    assert mixed["ROUGE-L"] == alone["ROUGE-L"]
    assert "only empty references" in caplog.text


def test_all_references_empty_gives_nan():
    scores = caption_metrics(["", "chest"], ["", "..."], meteor=False)
    assert scores["captions scored"] == 0
    assert all(math.isnan(scores[name]) for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"))


def test_no_captions_gives_nan():
    scores = caption_metrics([], [], meteor=False)
    assert math.isnan(scores["CIDEr"])


def test_metrics_reject_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        caption_metrics(["a"], ["a", "b"], meteor=False)


def test_metrics_reject_empty_reference_list():
    with pytest.raises(ValueError, match=r"references\[0\] is an empty list"):
        caption_metrics(["a"], [[]], meteor=False)


def test_metrics_reject_bad_meteor_argument():
    with pytest.raises(ValueError, match="meteor must be"):
        caption_metrics(["a"], ["a"], meteor="yes")


def test_meteor_false_omits_meteor():
    assert "METEOR" not in caption_metrics(["a b"], ["a b"], meteor=False)


def test_meteor_skipped_without_java(monkeypatch, caplog):
    monkeypatch.setenv("PATH", "")
    with caplog.at_level(logging.WARNING):
        scores = caption_metrics(["chest ct"], ["chest ct"], meteor="auto")
    assert "METEOR" not in scores
    assert "METEOR skipped" in caplog.text


def test_meteor_required_without_java_raises(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="needs Java"):
        caption_metrics(["chest ct"], ["chest ct"], meteor=True)


@pytest.mark.skipif(not meteor_available(), reason="METEOR needs a Java runtime")
def test_meteor_scores_with_java():
    with meteor_scorer() as scorer:
        same = caption_metrics(["chest ct with a left nodule"], ["chest ct with a left nodule"], meteor=scorer)
        disjoint = caption_metrics(["brain mri"], ["chest ct with a left nodule"], meteor=scorer)
        partial = caption_metrics(
            ["left lung nodule on ct", "normal brain mri"],
            ["chest ct with a left nodule", "brain mri within normal limits"],
            meteor=scorer,
        )
    assert same["METEOR"] > 0.9
    assert disjoint["METEOR"] == 0.0
    assert 0.0 < partial["METEOR"] < same["METEOR"]


# ---------------------------------------------------------------------------
# Clinical correctness: parsing

PARSE_CASES = [
    # caption, modality, anatomy, finding, side
    ("Chest CT: 12 mm nodule in the left lung.", "CT", "chest", "nodule", "left"),
    ("Axial computed tomography of the thorax showing a right pleural effusion.", "CT", "chest", "pleural effusion", "right"),
    ("CXR with a left-sided pleural effusion.", "radiograph", "chest", "pleural effusion", "left"),
    ("Bilateral pleural effusions on chest X-ray.", "radiograph", "chest", "pleural effusion", "bilateral"),
    ("Right PTX on CXR.", "radiograph", "chest", "pneumothorax", "right"),
    ("Two pulmonary nodules in the right lung on chest CT.", "CT", "chest", "nodule", "right"),
    ("Chest X-ray with no acute abnormality.", "radiograph", "chest", "normal", "none"),
    ("Unremarkable NCCT head.", "CT", "head", "normal", "none"),
    ("T2-weighted MRI of the brain: normal.", "MRI", "head", "normal", "none"),
    ("No pleural effusion.", None, None, None, "none"),
    ("Chest CT without pleural effusion.", "CT", "chest", None, "none"),
    ("Chest CT negative for pneumothorax.", "CT", "chest", None, "none"),
    ("Pneumothorax is absent on this chest radiograph.", "radiograph", "chest", None, "none"),
    ("No left pleural effusion, right nodule.", None, None, "nodule", "right"),
    ("Chest CT with a left nodule. No pleural effusion.", "CT", "chest", "nodule", "left"),
    ("Normal heart; small nodule in the left lung on CT.", "CT", "chest", "nodule", "left"),
    ("Lesion in the right hepatic lobe on CT.", "CT", None, None, "none"),
    ("Pneumothorax at the apex of the left lung on CT.", "CT", "chest", "pneumothorax", "left"),
    ("", None, None, None, "none"),
]


@pytest.mark.parametrize("caption, modality, anatomy, finding, side", PARSE_CASES)
def test_parse_caption_variants(caption, modality, anatomy, finding, side):
    parsed = parse_caption_labels(caption, VOCABULARY)
    assert parsed["modality"] == modality
    assert parsed["anatomy"] == anatomy
    assert parsed["finding"] == finding
    assert parsed["side"] == side


def test_parse_without_absent_labels():
    parsed = parse_caption_labels("Normal chest CT.", VOCABULARY, absent_labels={})
    assert parsed["side"] is None


def test_parse_selected_fields():
    assert parse_caption_labels("Left nodule on CT.", VOCABULARY, fields=["finding"]) == {"finding": "nodule"}


def test_parse_rejects_unknown_field():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        parse_caption_labels("CT", VOCABULARY, fields=["size"])


def test_parser_reads_phantom_captions_like_corpus_parser():
    rng = np.random.default_rng(0)
    labels = sample_labels(rng, 400)
    captions = [make_caption({key: labels[key][i] for key in labels}, rng) for i in range(400)]
    parser = CaptionLabelParser(PHANTOM_VOCABULARY)

    disagreements = []
    for caption in captions:
        ours, theirs = parser.parse(caption), parse_caption(caption)
        for field in ("modality", "anatomy", "finding"):
            if ours[field] != theirs[field]:
                disagreements.append((field, caption, ours[field], theirs[field]))
        if (theirs["side"] or "none") != ours["side"]:
            disagreements.append(("side", caption, ours["side"], theirs["side"]))
    assert disagreements == []


def test_reference_captions_score_high():
    # A caption does not always state the anatomy or the side (an abdominal
    # "right upper quadrant" ultrasound), so references score below 1.
    rng = np.random.default_rng(1)
    labels = sample_labels(rng, 400)
    captions = [make_caption({key: labels[key][i] for key in labels}, rng) for i in range(400)]
    scores = clinical_correctness(captions, {key: list(labels[key]) for key in ("modality", "anatomy", "finding", "side")})
    assert scores["modality accuracy"] == 1.0
    assert scores["finding accuracy"] == 1.0
    assert scores["clinical accuracy"] > 0.95


# ---------------------------------------------------------------------------
# Clinical correctness: scores


def test_clinical_scores_hand_computed():
    predictions = ["chest ct", "brain mri", "chest x-ray", "ct of the head"]
    labels = {"modality": ["CT", "CT", "radiograph", "MRI"]}
    scores = clinical_correctness(predictions, labels, vocabulary=VOCABULARY)
    # Predicted CT, MRI, radiograph, CT. Per label F1: CT (P 1/2, R 1/2) 0.5,
    # radiograph 1, MRI (P 0, R 0) 0; macro mean 0.5.
    assert scores["modality accuracy"] == pytest.approx(0.5)
    assert scores["modality F1"] == pytest.approx(0.5)
    assert scores["clinical accuracy"] == pytest.approx(0.5)
    assert set(scores) == {"modality accuracy", "modality F1", "clinical accuracy", "clinical F1"}


def test_unparsed_prediction_counts_as_wrong():
    scores = clinical_correctness(["", "chest"], {"anatomy": ["chest", "chest"]}, vocabulary=VOCABULARY)
    assert scores["anatomy accuracy"] == pytest.approx(0.5)
    # Only "chest" occurs in the truth: P 1, R 1/2, so F1 2/3.
    assert scores["anatomy F1"] == pytest.approx(2 / 3)
    assert UNPARSED_LABEL.startswith("<")


def test_clinical_scores_average_fields():
    predictions = ["left nodule on chest ct", "normal brain mri"]
    labels = {"modality": ["CT", "MRI"], "finding": ["nodule", "pleural effusion"], "side": ["left", "none"]}
    scores = clinical_correctness(predictions, labels, vocabulary=VOCABULARY)
    assert scores["modality accuracy"] == 1.0
    assert scores["finding accuracy"] == 0.5
    assert scores["side accuracy"] == 1.0
    assert scores["clinical accuracy"] == pytest.approx(2.5 / 3)


def test_clinical_scores_accept_dataset():
    labels = datasets.Dataset.from_dict({"modality": ["CT", "MRI"], "anatomy": ["chest", "head"], "caption": ["", ""]})
    scores = clinical_correctness(["chest ct", "brain mri"], labels, vocabulary=VOCABULARY)
    assert scores["clinical accuracy"] == 1.0
    assert "finding accuracy" not in scores


def test_clinical_scores_of_no_captions_are_nan():
    scores = clinical_correctness([], {"modality": []}, vocabulary=VOCABULARY)
    assert math.isnan(scores["modality accuracy"])


def test_clinical_scores_reject_length_mismatch():
    with pytest.raises(ValueError, match="has 1 values but there are 2 predictions"):
        clinical_correctness(["ct", "mri"], {"modality": ["CT"]}, vocabulary=VOCABULARY)


def test_clinical_scores_reject_labels_without_fields():
    with pytest.raises(ValueError, match="none of the fields"):
        clinical_correctness(["ct"], {"group": ["x"]}, vocabulary=VOCABULARY)


def test_clinical_scores_reject_missing_field():
    with pytest.raises(ValueError, match="no column for fields"):
        clinical_correctness(["ct"], {"modality": ["CT"]}, vocabulary=VOCABULARY, fields=["anatomy"])
