"""Radiology-style captions for the phantom corpus, and a parser that reads them back.

Captions imitate the figure captions of radiology articles (as in ROCO):
short, clinical, with synonyms, abbreviations, measurements, arrows and
occasional negated statements. A caption names only what its image shows:
every finding it mentions outside a negation is the image's finding, and
every side, location, size and count it states equals the image's labels.

:data:`PHANTOM_VOCABULARY` lists, per label column and value, every surface
phrase the captions use for it. :func:`parse_caption` inverts the generator
with it (longest phrase first, negation-aware), so generated or predicted
captions can be scored against labels.
"""

from __future__ import annotations

import functools
import re

import numpy as np

#: label column -> label value -> phrases (case-insensitive, plural "s"/"es" allowed).
#: A phrase may appear under several columns (e.g. "CXR" is both a radiograph
#: and the chest) but under only one value per column.
PHANTOM_VOCABULARY: dict[str, dict] = {
    "modality": {
        "radiograph": ["radiograph", "radiography", "X-ray", "film", "plain film", "CXR"],
        "CT": ["CT", "computed tomography", "NCCT"],
        "MRI": ["MRI", "MR", "magnetic resonance imaging", "T2-weighted", "T2W", "T2"],
        "ultrasound": ["ultrasound", "US", "sonography", "sonogram", "ultrasonography"],
    },
    "anatomy": {
        "chest": ["chest", "thorax", "CXR", "lung"],
        "abdomen": ["abdomen", "abdominal", "upper abdomen"],
        "head": ["head", "brain"],
        "knee": ["knee"],
    },
    "finding": {
        "normal": ["normal", "unremarkable", "no acute abnormality", "no acute findings",
                   "within normal limits"],
        "nodule": ["nodule", "pulmonary nodule", "lung nodule", "nodular opacity", "nodular opacities"],
        "mass": ["mass", "lung mass", "pulmonary mass"],
        "pleural effusion": ["pleural effusion", "pleural fluid", "hydrothorax"],
        "pneumothorax": ["pneumothorax", "PTX"],
        "cardiomegaly": ["cardiomegaly", "enlarged cardiac silhouette", "cardiac enlargement",
                         "enlarged heart"],
        "liver lesion": ["liver lesion", "hepatic lesion", "focal liver lesion"],
        "kidney cyst": ["renal cyst", "kidney cyst"],
        "free fluid": ["free fluid", "ascites", "free intraperitoneal fluid", "intraperitoneal fluid"],
        "intracranial hemorrhage": ["intracranial hemorrhage", "ICH", "hemorrhage", "hematoma", "bleed",
                                    "subdural hematoma", "SDH", "intraparenchymal hemorrhage",
                                    "intracerebral hemorrhage"],
        "brain tumor": ["brain tumor", "intracranial mass", "intra-axial mass", "brain mass",
                        "intracranial tumor", "intra-axial tumor"],
        "hydrocephalus": ["hydrocephalus", "ventriculomegaly", "dilated lateral ventricles",
                          "enlarged ventricles"],
        "fracture": ["fracture", "fx"],
        "joint effusion": ["joint effusion", "knee effusion", "suprapatellar effusion",
                           "intra-articular fluid"],
    },
    "side": {
        "right": ["right", "right-sided"],
        "left": ["left", "left-sided"],
        "bilateral": ["bilateral"],
    },
    "location": {
        "upper zone": ["upper zone", "upper lung zone"],
        "mid zone": ["mid zone", "mid lung zone"],
        "lower zone": ["lower zone", "lower lung zone", "lung base"],
        "peripheral": ["peripheral", "subpleural"],
        "central": ["central", "perihilar"],
        "apical": ["apical", "apex"],
        "anterior": ["anterior"],
        "right lobe": ["right hepatic lobe", "right lobe of the liver", "right liver lobe"],
        "left lobe": ["left hepatic lobe", "left lobe of the liver", "left liver lobe"],
        "perihepatic": ["perihepatic", "Morison's pouch", "hepatorenal"],
        "perisplenic": ["perisplenic"],
        "subdural": ["subdural", "subdural hematoma", "SDH"],
        "intraparenchymal": ["intraparenchymal", "intraparenchymal hemorrhage", "intracerebral hemorrhage"],
        "frontal lobe": ["frontal lobe"],
        "parietal lobe": ["parietal lobe"],
        "occipital lobe": ["occipital lobe"],
        "distal femur": ["distal femur", "distal femoral"],
        "proximal tibia": ["proximal tibia", "proximal tibial", "tibial plateau"],
        "suprapatellar": ["suprapatellar", "suprapatellar recess", "suprapatellar effusion"],
    },
    "count": {
        1: ["single", "solitary"],
        2: ["two"],
        3: ["three"],
    },
}

NEGATION_CUES = ("no", "without", "negative for", "absence of")

_NUMBER_WORDS = {2: "two", 3: "three"}

_STUDIES = {
    ("chest", "radiograph"): ["Chest radiograph", "Chest X-ray", "PA chest radiograph", "Frontal chest X-ray",
                              "Posteroanterior chest radiograph", "CXR", "Plain radiograph of the chest",
                              "AP chest film", "Radiograph of the chest"],
    ("chest", "CT"): ["Axial CT of the chest", "Chest CT", "Axial computed tomography of the thorax",
                      "Contrast-enhanced chest CT", "CT thorax", "Axial CT image of the chest", "Non-contrast CT of the chest"],
    ("abdomen", "CT"): ["Axial contrast-enhanced CT of the abdomen", "Abdominal CT", "CT abdomen",
                        "Axial CT image of the upper abdomen", "Portal venous phase CT of the abdomen",
                        "Contrast-enhanced computed tomography of the abdomen"],
    ("abdomen", "MRI"): ["Axial T2-weighted MRI of the abdomen", "T2-weighted MR image of the upper abdomen",
                         "Abdominal MRI", "Axial T2W MRI of the abdomen", "MRI abdomen, T2-weighted",
                         "Axial T2 MR image of the abdomen"],
    ("abdomen", "ultrasound"): ["Abdominal ultrasound", "Sonography of the upper abdomen", "US of the upper abdomen",
                                "Abdominal US", "Ultrasound of the {side} upper quadrant", "{Side} upper quadrant sonogram",
                                "Ultrasonography of the {side} upper quadrant"],
    ("head", "CT"): ["Non-contrast CT of the head", "Axial head CT", "NCCT head", "Axial CT of the brain",
                     "Unenhanced head CT", "CT brain"],
    ("head", "MRI"): ["Axial T2-weighted MRI of the brain", "Brain MRI", "Axial T2W MR image of the brain",
                      "T2-weighted MRI of the head", "MRI brain, axial T2"],
    ("knee", "radiograph"): ["AP radiograph of the {side} knee", "{Side} knee X-ray", "Frontal radiograph of the {side} knee",
                             "Knee radiograph", "Plain film of the {side} knee", "AP X-ray of the {side} knee"],
    ("knee", "MRI"): ["Sagittal T2-weighted fat-saturated MRI of the knee", "Knee MRI", "Sagittal MR image of the knee",
                      "Sagittal proton density fat-suppressed MRI of the knee"],
}

_POSITIVE_TEMPLATES = [
    "{Study} showing {np}{arrow}.",
    "{Study} demonstrates {np}{arrow}.",
    "{Study} reveals {np}{arrow}.",
    "{Study}: {np}{arrow}.",
    "{NP}{arrow} on {study}.",
    "{NP}{arrow} seen on {study}.",
    "{Study} with {np}{arrow}.",
    "{NP}{arrow}. {Study}.",
    "{Study} of a patient with {np}{arrow}.",
]
_NORMAL_TEMPLATES = [
    "{Study} with no acute abnormality.",
    "Normal {study}.",
    "{Study}: normal findings.",
    "Unremarkable {study}.",
    "{Study} within normal limits.",
    "{Study} showing normal appearances.",
    "No acute findings on {study}.",
]
_NEGATIONS = {
    "chest": ["No pleural effusion.", "No pneumothorax.", "No focal consolidation."],
    "abdomen": ["No free fluid.", "No ascites.", "No hydronephrosis."],
    "head": ["No intracranial hemorrhage.", "No midline shift.", "No hydrocephalus."],
    "knee": ["No fracture.", "No joint effusion.", "No dislocation."],
}
_ARROWS = [" (arrow)", " (arrowhead)", " (white arrow)", " (asterisk)"]
_ARROWS_PLURAL = [" (arrows)", " (arrowheads)"]


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an abbreviation (CT, MRI, AP ...)."""
    first = text.split(" ", 1)[0].rstrip(",:")
    if len(first) > 1 and first[:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _size_text(size_mm: int, rng: np.random.Generator, form: str = "pre") -> str:
    """Format a size as '23 mm', '23-mm' or '2.3 cm' (centimetres only from 20 mm on)."""
    use_cm = size_mm >= 20 and rng.uniform() < 0.35
    value = f"{size_mm / 10:.1f} cm" if use_cm else f"{size_mm} mm"
    if form == "pre" and not use_cm and rng.uniform() < 0.5:
        value = f"{size_mm}-mm"
    return value


def _with_article(phrase: str) -> str:
    """Turn a leading "a" into "an" before a vowel sound (including 8, 11, 18, 80-89)."""
    if not phrase.startswith("a "):
        return phrase
    word = phrase[2:].split(" ", 1)[0]
    digits = re.match(r"\d+", word)
    if digits:
        number = digits.group()
        vowel_sound = number.startswith("8") or number in ("11", "18")
    else:
        vowel_sound = word[:1].lower() in "aeiou"
    return "an " + phrase[2:] if vowel_sound else phrase


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _finding_phrase(labels: dict, rng: np.random.Generator) -> tuple[str, bool]:
    """Return a noun phrase for the finding with some of its attributes, and whether it is plural."""
    finding, side, location = labels["finding"], labels["side"], labels["location"]
    size, count, modality = int(labels["size_mm"]), int(labels["count"]), labels["modality"]
    say_size = size > 0 and rng.uniform() < 0.65
    say_side = rng.uniform() < 0.8
    plural = count > 1
    vocabulary = PHANTOM_VOCABULARY["location"]

    if finding in ("nodule", "mass", "liver lesion"):
        nouns = {"nodule": ["nodule", "pulmonary nodule", "lung nodule", "nodular opacity"],
                 "mass": ["mass", "lung mass", "pulmonary mass"],
                 "liver lesion": ["liver lesion", "hepatic lesion", "focal liver lesion"]}[finding]
        noun = _choice(rng, nouns)
        if plural:
            noun = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
        adjectives = {"nodule": ["", "solid ", "well-circumscribed ", "round "],
                      "mass": ["", "lobulated ", "large "],
                      "CT": ["hypodense ", "low-attenuation "],
                      "MRI": ["T2-hyperintense ", "hyperintense "],
                      "ultrasound": ["hyperechoic ", "echogenic "]}[modality if finding == "liver lesion" else finding]
        adjective = _choice(rng, adjectives)
        where = _choice(rng, vocabulary[location])
        if location in ("peripheral", "central"):
            # On CT the location is an adjective: "a subpleural nodule in the right lung".
            adjective = f"{where} {adjective}"
        determiner = _NUMBER_WORDS[count] + " " if plural else _choice(rng, ["a ", "a ", "a solitary ", "a single "])
        size_before = say_size and rng.uniform() < 0.5
        size_text = _size_text(size, rng) + " " if size_before else ""
        phrase = _with_article(f"{determiner}{size_text}{adjective}{noun}")
        if say_size and not size_before:
            if rng.uniform() < 0.5:
                phrase += f" ({'the largest ' if plural else ''}{_size_text(size, rng, 'post')})"
            else:
                phrase += f" measuring {'up to ' if plural else ''}{_size_text(size, rng, 'post')}"
        if finding == "liver lesion":
            phrase += f" in the {where}"
        elif location in ("peripheral", "central"):
            phrase += f" in the {side} lung"
        else:
            phrase += f" in the {side} {where}"
        return phrase, plural

    if finding == "pleural effusion":
        noun = _choice(rng, ["pleural effusion", "pleural fluid"])
        if side == "bilateral":
            phrase = "bilateral pleural effusions" if noun == "pleural effusion" else "bilateral pleural fluid"
            plural = noun == "pleural effusion"
        else:
            phrase = f"a {side} {noun}" if noun == "pleural effusion" else f"{side} {noun}"
            if say_side and rng.uniform() < 0.3:
                phrase = f"a {side}-sided pleural effusion"
        if say_size:
            phrase += f" ({_size_text(size, rng, 'post')} deep)" if rng.uniform() < 0.5 else \
                f" with a depth of {_size_text(size, rng, 'post')}"
        return phrase, plural

    if finding == "pneumothorax":
        noun = _choice(rng, ["pneumothorax", "pneumothorax", "PTX"])
        where = _choice(rng, vocabulary[location])
        phrase = f"a {side} {where} {noun}" if where != "apex" else f"a {side} {noun} at the apex"
        if say_size:
            phrase += f" with a {_size_text(size, rng)} rim"
        return phrase, False

    if finding == "cardiomegaly":
        return _choice(rng, ["cardiomegaly", "an enlarged cardiac silhouette", "cardiac enlargement",
                             "an enlarged heart"]), False

    if finding == "kidney cyst":
        noun = _choice(rng, ["renal cyst", "kidney cyst"])
        adjective = _choice(rng, ["", "simple ", "exophytic "])
        size_text = f"{_size_text(size, rng)} " if say_size else ""
        phrase = f"a {size_text}{adjective}{side} {noun}" if rng.uniform() < 0.5 else \
            f"a {size_text}{adjective}{noun} in the {side} kidney"
        return _with_article(phrase), False

    if finding == "free fluid":
        noun = _choice(rng, ["free fluid", "ascites", "free intraperitoneal fluid"])
        where = _choice(rng, vocabulary[location])
        phrase = f"{where} {noun}" if where in ("perihepatic", "perisplenic") else f"{noun} in {where}"
        if where == "hepatorenal":
            phrase = f"{noun} in the hepatorenal recess"
        if say_size:
            phrase += f" ({_size_text(size, rng, 'post')})"
        return phrase, False

    if finding == "intracranial hemorrhage":
        if location == "subdural":
            noun = _choice(rng, ["subdural hematoma", "subdural hemorrhage", "SDH"])
            phrase = f"a {side} {noun}" if rng.uniform() < 0.5 else f"a {noun} over the {side} convexity"
            if say_size:
                phrase += f", {_size_text(size, rng, 'post')} thick"
        else:
            noun = _choice(rng, ["intraparenchymal hemorrhage", "intracerebral hemorrhage",
                                 "intraparenchymal hematoma"])
            phrase = f"a {side} {noun}" if rng.uniform() < 0.5 else f"{noun} in the {side} hemisphere"
            if say_size:
                phrase += f" measuring {_size_text(size, rng, 'post')}"
        return _with_article(phrase), False

    if finding == "brain tumor":
        noun = _choice(rng, ["brain tumor", "intracranial mass", "intra-axial mass", "brain mass",
                             "intracranial tumor"])
        adjective = _choice(rng, ["", "heterogeneous "] if modality == "CT" else ["", "T2-hyperintense "])
        size_text = f"{_size_text(size, rng)} " if say_size else ""
        edema = _choice(rng, ["", " with surrounding edema", " with perilesional edema"])
        phrase = _with_article(f"a {size_text}{adjective}{noun} in the {side} {_choice(rng, vocabulary[location])}{edema}")
        return phrase, False

    if finding == "hydrocephalus":
        return _choice(rng, ["hydrocephalus", "ventriculomegaly", "dilated lateral ventricles",
                             "enlarged ventricles"]), False

    if finding == "fracture":
        where = _choice(rng, vocabulary[location])
        if where.endswith("al"):
            return f"a {where} fracture", False
        if where == "tibial plateau":
            return "a fracture of the tibial plateau", False
        return f"a fracture of the {where}", False

    if finding == "joint effusion":
        noun = _choice(rng, ["joint effusion", "knee effusion", "suprapatellar effusion"])
        phrase = _choice(rng, [f"a {noun}", f"a {noun} in the suprapatellar recess"])
        if noun == "joint effusion" and rng.uniform() < 0.4:
            phrase = "a suprapatellar joint effusion"
        if say_size:
            phrase += f" ({_size_text(size, rng, 'post')})"
        return phrase, False

    raise ValueError(f"No caption phrases for finding {finding!r}.")


def make_caption(labels: dict, rng: np.random.Generator) -> str:
    """Write one caption for an image with these labels (a row of the label arrays)."""
    anatomy, modality, finding, side = labels["anatomy"], labels["modality"], labels["finding"], labels["side"]
    study = _choice(rng, _STUDIES[(anatomy, modality)])
    if "{side}" in study.lower():
        if side in ("right", "left"):
            study = study.replace("{side}", side).replace("{Side}", side.capitalize())
        else:
            study = _STUDIES[(anatomy, modality)][0]

    if finding == "normal":
        caption = _choice(rng, _NORMAL_TEMPLATES).format(Study=study, study=_lower_first(study))
    else:
        phrase, plural = _finding_phrase(labels, rng)
        arrow = ""
        if rng.uniform() < 0.35:
            arrow = _choice(rng, _ARROWS_PLURAL if plural else _ARROWS)
        template = _choice(rng, _POSITIVE_TEMPLATES)
        caption = template.format(Study=study, study=_lower_first(study), np=phrase,
                                  NP=_upper_first(phrase), arrow=arrow)

    if rng.uniform() < 0.3:
        negations = [sentence for sentence in _NEGATIONS[anatomy] if finding not in _negated_findings(sentence)]
        caption += " " + _choice(rng, negations)
    return caption


@functools.lru_cache(maxsize=None)
def _negated_findings(sentence: str) -> tuple[str, ...]:
    return tuple(mention[1] for mention in caption_mentions(sentence) if mention[0] == "finding" and mention[2])


@functools.lru_cache(maxsize=1)
def _phrase_patterns() -> list[tuple[re.Pattern, list[tuple[str, object]]]]:
    """Phrases longest first, each with the (column, value) pairs it names."""
    targets: dict[str, list[tuple[str, object]]] = {}
    for column, values in PHANTOM_VOCABULARY.items():
        for value, phrases in values.items():
            for phrase in phrases:
                targets.setdefault(phrase.lower(), []).append((column, value))
    ordered = sorted(targets, key=len, reverse=True)
    return [
        (re.compile(r"(?<![\w-])" + re.escape(phrase) + r"(?:s|es)?(?![\w-])", re.IGNORECASE), targets[phrase])
        for phrase in ordered
    ]


_SIZE_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*-?\s*(mm|cm)\b", re.IGNORECASE)
_NEGATION_PATTERN = re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(cue) for cue in NEGATION_CUES) + r")(?![\w-])",
                               re.IGNORECASE)


def caption_mentions(caption: str) -> list[tuple[str, object, bool, int]]:
    """List what a caption names: ``(column, value, negated, start)`` in order of appearance.

    Phrases from :data:`PHANTOM_VOCABULARY` are matched longest first without
    overlaps. A finding is negated when a negation cue ("no", "without" ...)
    precedes it in the same clause (clauses end at ``.``, ``;`` or ``,``);
    the ``normal`` finding and the other columns are never negated, so
    "No acute findings on chest CT" still names CT and the chest. Sizes appear as
    ``("size_mm", value, False, start)`` with the value in millimetres.
    """
    consumed = np.zeros(len(caption) + 1, dtype=bool)
    mentions = []
    for pattern, targets in _phrase_patterns():
        for match in pattern.finditer(caption):
            start, end = match.span()
            if consumed[start:end].any():
                continue
            consumed[start:end] = True
            clause_start = max(caption.rfind(mark, 0, start) for mark in ".;,") + 1
            negated = _NEGATION_PATTERN.search(caption, clause_start, start) is not None
            for column, value in targets:
                negatable = column == "finding" and value != "normal"
                mentions.append((column, value, negated and negatable, start))
    for match in _SIZE_PATTERN.finditer(caption):
        number = float(match.group(1)) * (10 if match.group(2).lower() == "cm" else 1)
        mentions.append(("size_mm", int(round(number)), False, match.start()))
    return sorted(mentions, key=lambda mention: mention[3])


def parse_caption(caption: str) -> dict[str, object]:
    """Read the labels a caption states.

    Returns a dict with the keys of :data:`PHANTOM_VOCABULARY` plus
    ``size_mm`` (the first value stated for each, or None when the caption
    does not state it) and ``negated`` (the findings named only under a
    negation, as a list). An abnormal finding wins over ``normal``.
    """
    mentions = caption_mentions(caption)
    result: dict[str, object] = {column: None for column in PHANTOM_VOCABULARY}
    result["size_mm"] = None
    negated = []
    for column, value, is_negated, _ in mentions:
        if is_negated:
            if column == "finding" and value not in negated:
                negated.append(value)
            continue
        if column == "finding" and result["finding"] == "normal" and value != "normal":
            result["finding"] = value
        if result[column] is None:
            result[column] = value
    result["negated"] = negated
    return result
