"""Hub loaders, run offline on local parquet files built in each hub dataset's exact schema."""

import io
import logging
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
from PIL import Image

from medgap_utils.data import CORPUS_FEATURES, validate_corpus
from medgap_utils.data.hub import (
    HubUnavailableError,
    hub_reachable,
    load_image_caption_dataset,
    load_iu_xray,
    load_roco,
    write_roco_parquet,
)


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 32), value, dtype=np.uint8), mode="L").save(buffer, format="JPEG")
    return buffer.getvalue()


CORRUPT = b"\xff\xd8\xff\xe0 truncated jpeg"

IU_FEATURES = datasets.Features({
    "uid": datasets.Value("int64"), "MeSH": datasets.Value("string"), "Problems": datasets.Value("string"),
    "image": datasets.Value("string"), "indication": datasets.Value("string"),
    "comparison": datasets.Value("string"), "findings": datasets.Value("string"),
    "impression": datasets.Value("string"), "img_frontal": datasets.Value("binary"),
    "img_lateral": datasets.Value("binary"),
})


def _roco_rows(split, with_cui=True):
    images = [_jpeg(40), _jpeg(80), CORRUPT, _jpeg(120), _jpeg(160)]
    captions = ["CT scan showing a liver lesion (arrow).", "  Chest X-ray:\n right pleural effusion. ",
                "MRI of the brain.", "   ", "Ultrasound of the kidney."]
    rows = {
        "image": [{"bytes": data, "path": None} for data in images],
        "image_id": [f"ROCOv2_2023_{split}_{i + 1:06d}" for i in range(5)],
        "caption": captions,
    }
    if with_cui:
        rows["cui"] = [["C0040405"], ["C1306645", "C0032227"], [], ["C0024485"], ["C0041618"]]
    return rows


@pytest.fixture(scope="module")
def roco_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rocov2")
    files = {}
    for split in ("train", "validation", "test"):
        path = write_roco_parquet(_roco_rows(split), folder / f"{split}-00000-of-00001.parquet")
        files[split] = str(path)
    return files


@pytest.fixture(scope="module")
def roco_v1_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("roco") / "train.parquet"
    return str(write_roco_parquet(_roco_rows("train", with_cui=False), path, with_cui=False))


@pytest.fixture(scope="module")
def iu_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("open-i") / "train.parquet"
    rows = {
        "uid": [1, 2, 3],
        "MeSH": ["normal", "Cardiomegaly/mild", "Opacity/lung/base/left"],
        "Problems": ["normal", "Cardiomegaly", "Opacity"],
        "image": ["Xray Chest PA and Lateral", "Chest, 2 views, frontal and lateral", "PA and lateral chest"],
        "indication": ["Cough.", "Dyspnea.", "Fever."],
        "comparison": ["None.", "", "None."],
        "findings": ["The lungs are clear.", "Heart size is mildly enlarged.", ""],
        "impression": ["No acute cardiopulmonary process.", "Mild cardiomegaly.", ""],
        "img_frontal": [_jpeg(50), _jpeg(60), _jpeg(70)],
        "img_lateral": [_jpeg(55), CORRUPT, _jpeg(75)],
    }
    datasets.Dataset.from_dict(rows, features=IU_FEATURES).to_parquet(str(path))
    return str(path)


def _assert_common(dataset):
    for column, feature in CORPUS_FEATURES.items():
        assert dataset.features[column] == feature
    validate_corpus(dataset)


def test_roco_v2_local_files_map_to_common_schema(roco_files, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        corpus = load_roco("v2", data_files=roco_files, cache_dir=str(tmp_path))
    assert list(corpus) == ["train", "validation", "test"]
    train = corpus["train"]
    _assert_common(train)
    assert train["image_id"] == ["ROCOv2_2023_train_000001", "ROCOv2_2023_train_000002", "ROCOv2_2023_train_000005"]
    assert train["caption"][1] == "Chest X-ray: right pleural effusion."
    assert train["cui"][1] == ["C1306645", "C0032227"]
    assert train[0]["image"].size == (32, 24)
    assert "1 with unreadable image" in caplog.text
    assert "1 with empty caption" in caplog.text


def test_roco_mini_single_split(roco_files, tmp_path):
    test = load_roco("mini", split="test", data_files={"test": roco_files["test"]}, cache_dir=str(tmp_path))
    assert isinstance(test, datasets.Dataset)
    _assert_common(test)
    assert len(test) == 3


def test_roco_v1_has_no_cui(roco_v1_file, tmp_path):
    train = load_roco("v1", split="train", data_files=roco_v1_file, cache_dir=str(tmp_path))
    _assert_common(train)
    assert "cui" not in train.column_names


def test_roco_max_rows(roco_files, tmp_path):
    train = load_roco("v2", split="train", data_files={"train": roco_files["train"]}, max_rows=2,
                      cache_dir=str(tmp_path))
    assert len(train) == 2


def test_roco_streaming_drops_bad_rows_lazily(roco_files, caplog):
    with caplog.at_level(logging.WARNING):
        stream = load_roco("v2", split="train", streaming=True, data_files={"train": roco_files["train"]})
        assert isinstance(stream, datasets.IterableDataset)
        rows = list(stream)
    assert [row["image_id"] for row in rows] == [
        "ROCOv2_2023_train_000001", "ROCOv2_2023_train_000002", "ROCOv2_2023_train_000005"]
    assert isinstance(rows[0]["image"], Image.Image)
    assert "unreadable image" in caplog.text


def test_roco_unknown_version_raises():
    with pytest.raises(ValueError, match="version"):
        load_roco("v3")


def test_iu_xray_frontal_rows(iu_file, tmp_path):
    train = load_iu_xray(data_files=iu_file, cache_dir=str(tmp_path))
    _assert_common(train)
    assert train["image_id"] == ["1_frontal", "2_frontal"]
    assert train["caption"] == ["The lungs are clear. No acute cardiopulmonary process.",
                                "Heart size is mildly enlarged. Mild cardiomegaly."]
    assert train["Problems"] == ["normal", "Cardiomegaly"]


def test_iu_xray_both_views_drop_corrupt_image(iu_file, tmp_path):
    train = load_iu_xray(data_files=iu_file, views=("frontal", "lateral"), cache_dir=str(tmp_path))
    assert train["image_id"] == ["1_frontal", "1_lateral", "2_frontal"]


def test_iu_xray_invalid_arguments_raise(iu_file):
    with pytest.raises(ValueError, match="views"):
        load_iu_xray(views=("oblique",), data_files=iu_file)
    with pytest.raises(ValueError, match="'summary'"):
        load_iu_xray(caption_fields=("summary",), data_files=iu_file)


def test_generic_loader_with_other_column_names(tmp_path):
    rows = {"img": [{"bytes": _jpeg(10), "path": None}, {"bytes": _jpeg(20), "path": None}],
            "text": ["A knee radiograph.", "An MRI of the knee."], "label": ["xr", "mr"]}
    features = datasets.Features({"img": datasets.Image(), "text": datasets.Value("string"),
                                  "label": datasets.Value("string")})
    folder = tmp_path / "local-set"
    folder.mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "train.parquet"))
    corpus = load_image_caption_dataset(str(folder), image_column="img", caption_column="text",
                                        keep_columns=["label"], split="train", cache_dir=str(tmp_path / "cache"))
    _assert_common(corpus)
    assert corpus["image_id"] == ["local-set-train-0000000", "local-set-train-0000001"]
    assert corpus["label"] == ["xr", "mr"]


def test_generic_loader_missing_column_names_it(roco_v1_file):
    with pytest.raises(ValueError, match=r"column 'text' \(from caption_column\) not found.*'caption'"):
        load_image_caption_dataset("local", caption_column="text", data_files=roco_v1_file, split="train")


def test_loaders_share_one_schema(roco_files, roco_v1_file, iu_file, tmp_path, monkeypatch):
    from medgap_utils.data import load_dicom_slices, load_phantom_corpus

    loaded = [
        load_roco("v2", split="train", data_files={"train": roco_files["train"]}, cache_dir=str(tmp_path)),
        load_roco("v1", split="train", data_files=roco_v1_file, cache_dir=str(tmp_path)),
        load_iu_xray(data_files=iu_file, cache_dir=str(tmp_path)),
        load_dicom_slices(),
    ]
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "medgap"))
    loaded.append(load_phantom_corpus("ci", sizes=(9, 1, 1))["train"])
    for dataset in loaded:
        assert {column: dataset.features[column] for column in CORPUS_FEATURES} == dict(CORPUS_FEATURES)


def test_unreachable_endpoint_fails_fast(monkeypatch):
    """A closed local port simulates a machine without network, so nothing leaves the machine."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert not hub_reachable(timeout=1.0)
    with pytest.raises(HubUnavailableError, match="eltorio/ROCOv2-radiology.*load_phantom_corpus"):
        load_roco("v2")
    with pytest.raises(HubUnavailableError, match="ykumards/open-i"):
        load_iu_xray()


OFFLINE_SCRIPT = """
from medgap_utils.data.hub import HubUnavailableError, load_roco
try:
    load_roco("mini")
except HubUnavailableError as error:
    print("RAISED:", error)
"""


def test_offline_mode_names_dataset_and_embedded_corpus(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               HF_DATASETS_CACHE=str(tmp_path / "hf-datasets"), HF_ENDPOINT="http://127.0.0.1:9")
    result = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=120)
    assert "RAISED:" in result.stdout, result.stderr[-2000:]
    assert "unsloth/Radiology_mini" in result.stdout
    assert "load_phantom_corpus" in result.stdout


def test_iu_xray_streaming(iu_file):
    stream = load_iu_xray(data_files=iu_file, views=("frontal", "lateral"), streaming=True)
    rows = list(stream)
    assert [row["image_id"] for row in rows] == ["1_frontal", "1_lateral", "2_frontal"]
    assert all(isinstance(row["image"], Image.Image) for row in rows)


def test_write_roco_parquet_keeps_hub_schema(roco_files):
    raw = datasets.load_dataset("parquet", data_files=roco_files["train"], split="train")
    assert raw.features == datasets.Features({
        "image": datasets.Image(), "image_id": datasets.Value("string"), "caption": datasets.Value("string"),
        "cui": datasets.List(datasets.Value("string")),
    })
    assert raw.cast_column("image", datasets.Image(decode=False))[2]["image"]["bytes"] == CORRUPT


def test_write_roco_parquet_rejects_wrong_columns(tmp_path):
    rows = _roco_rows("train", with_cui=False)
    with pytest.raises(ValueError, match="with_cui=False"):
        write_roco_parquet(rows, tmp_path / "v2.parquet")
    with pytest.raises(ValueError, match="equal length"):
        write_roco_parquet({**rows, "caption": rows["caption"][:2]}, tmp_path / "v1.parquet", with_cui=False)


OFFLINE_AFTER_IMPORT_SCRIPT = """
import os, socket, time
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network disabled by the test")
socket.create_connection = refuse
socket.socket.connect = refuse
from medgap_utils.data.hub import HubUnavailableError, load_roco
os.environ["HF_HUB_OFFLINE"] = "1"
started = time.perf_counter()
try:
    load_roco("mini")
except HubUnavailableError as error:
    print("RAISED:", error)
print("SECONDS:", time.perf_counter() - started)
print("ATTEMPTS:", len(attempts))
"""


def test_offline_set_after_import_opens_no_connection(tmp_path):
    """HF_HUB_OFFLINE set in a running notebook must stop datasets from trying the network."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf-datasets"))
    result = subprocess.run([sys.executable, "-c", OFFLINE_AFTER_IMPORT_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=120)
    assert "RAISED:" in result.stdout, result.stderr[-2000:]
    assert "ATTEMPTS: 0" in result.stdout
    assert "unsloth/Radiology_mini" in result.stdout
